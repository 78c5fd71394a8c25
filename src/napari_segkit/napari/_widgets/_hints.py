"""Tooltips for every field of the docks, and path fields that show their file name.

One table, keyed by widget class and field attribute, so the words live in one place
and a test can check that no field is left without one. A field that sets its own,
longer tooltip where it is made keeps it.
"""

from __future__ import annotations

from magicgui.widgets import FileEdit
from magicgui.widgets.bases import ValueWidget

TOOLTIPS = {
    "LoadWidget": {
        "folder": "tick to pick a folder: a zarr store, a folder of 2D slices or a DICOM series",
        "path": "a TIFF / OME-TIFF, zarr, NIfTI or DICOM file, opened lazily with its pixel size",
        "array": "the array of a zarr group to open",
    },
    "PredictWidget": {
        "image": "the image layer to segment (gray or RGB; 2D or a stack)",
        "model": "a napari-segkit model file (.safetensors), a bioimage.io package (.zip) or an "
        ".onnx / TorchScript export; the bundled nuclei model by default",
        "tile_size": "side of the tiles the image is cut into; 0 uses the model file's own",
        "overlap": "fraction of a tile shared with its neighbours (blended away: no seams)",
        "blend": "how overlapping tiles are combined: gaussian weights the tile centres most",
        "tta": "test-time augmentation: average the predictions of flipped (and rotated) copies",
        "device": "where the network runs: auto picks a GPU when there is one",
        "outputs": "what to add: class labels, plus per-class probabilities or layers",
        "to_zarr": "write the result block by block to a zarr store (for volumes larger "
        "than memory; an interrupted run resumes)",
        "overwrite": "replace an existing zarr output (otherwise it is refused)",
        "diameter": "the objects' typical diameter in this image, in pixels (the form starts "
        "at the middle of the model's trained range)",
    },
    "TrainWidget": {
        "image_layers": "the images to learn from (the i-th goes with the i-th labels layer)",
        "label_layers": "their annotations: class ids (or instances with target 'boundary')",
        "sparse": "0 means unlabeled: scribble a few strokes per class instead of painting all",
        "class_names": "comma-separated, one per class, background first (optional)",
        "arch": "the network (see segkit models -v for each one's options)",
        "loss": "dice+ce suits most data; border losses weight the gaps between objects",
        "class_weighting": "weight rare classes up in the cross-entropy (inverse or median "
        "frequency)",
        "epochs": "passes; the best epoch (validation Dice) is the model saved",
        "steps": "optimisation steps per epoch (each a batch of random patches)",
        "patch_size": "side of the random training patches",
        "batch_size": "patches per step (more: smoother, slower, more memory)",
        "zoom": "show the patches zoomed in and out by up to this factor (1: off), so the "
        "model also works at other pixel sizes (another objective or camera)",
        "blur": "blur the patches by a Gaussian of up to this sigma in pixels (0: off), so the "
        "model also works on blurrier images (a lower-NA objective, slight defocus)",
        "noise": "add Gaussian noise of up to this share of the normalised range (0: off), so "
        "the model also works on noisier images (shorter exposures)",
        "val_fraction": "share of the images (one image: a strip of it) held out to score "
        "each epoch",
        "out": "the model file to write (.safetensors); an existing one is not replaced "
        "unless 'overwrite' is ticked",
        "overwrite": "replace an existing model file at 'save model to'",
        "continue_from": "fine-tune an existing model on these labels instead of starting over",
        "init": "the model to continue from (never overwritten)",
        "predict_after": "segment the first image with the new model when training ends",
    },
    "ExportModelWidget": {
        "model": "the napari-segkit model file (.safetensors) to export",
        "format": "bioimage.io runs in Fiji (deepImageJ), ilastik, QuPath, BiaPy; ONNX in "
        "onnxruntime and OpenVINO; TorchScript in PyTorch without napari-segkit",
        "out": "the file to write (.zip, .onnx or .pt); written whole or not at all",
        "authors": "comma-separated names (default: the model file's, else you)",
        "license": "SPDX licence id of the weights (bioimage.io packages)",
        "test_image": "the image the package's test tensors and cover are cut from",
    },
    "BorderWeightsWidget": {
        "source": "the labels layer (instances, or a semantic mask split into objects)",
        "kind": "what the layer holds; auto reads a 0/1 mask as semantic",
        "w0": "extra weight of the pixels between touching objects",
        "sigma": "how far (pixels) that extra weight reaches from the objects",
        "balance": "also weight classes by their frequency",
    },
    "EvaluateWidget": {
        "prediction": "the predicted labels layer",
        "truth": "the ground-truth labels layer (never the same as the prediction)",
        "num_classes": "classes to score; 0 counts them from the data",
    },
    "ExportWidget": {
        "source": "the labels layer to save",
        "format": "TIFF, zarr (chunked, for large volumes) or a Kaggle run-length CSV",
        "path": "where to write (an existing file is not replaced unless 'overwrite')",
        "overwrite": "replace an existing file",
        "per_class": "CSV: one row per class instead of one per image",
    },
}


def apply_hints(form) -> None:
    """Give every field of `form` its tooltip, and path fields their file name in view.

    Parameters
    ----------
    form : magicgui Container
        One of the dock widgets; its fields are found by attribute name.

    Returns
    -------
    None
    """
    table = TOOLTIPS.get(type(form).__name__, {})
    for name, widget in vars(form).items():
        if not isinstance(widget, (ValueWidget, FileEdit)):  # FileEdit is a Container
            continue
        if not widget.tooltip and name in table:
            widget.tooltip = table[name]
        if isinstance(widget, FileEdit):
            _show_file_name(widget)


def _show_file_name(field: FileEdit) -> None:
    """Keep the end of the path (the file name) in view, the whole path in the tooltip."""
    from qtpy.QtWidgets import QLineEdit

    line = field.native.findChild(QLineEdit)
    base = field.tooltip or ""

    def update(*_):
        path = str(field.value) if field.value else ""
        field.tooltip = f"{base}\n{path}".strip()
        if line is not None:
            line.setCursorPosition(len(line.text()))  # the file name, not the folders

    field.changed.connect(update)
    update()
