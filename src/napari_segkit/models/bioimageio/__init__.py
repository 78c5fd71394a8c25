"""bioimage.io model packages: export ours, import theirs (local files only, no code run).

Export (:func:`napari_segkit.exchange.bioimageio_package.export_bioimageio`) writes a zip that Fiji (deepImageJ), ilastik, QuPath,
BiaPy and ``bioimageio.core`` run, described with the bioimage.io model spec 0.5 as the
installed ``bioimageio.spec`` writes it (its version is read from the package, never
hard-coded): weights as a ``pytorch_state_dict`` with the architecture's source, plus
TorchScript and ONNX converted from them (:mod:`.export`, each checked against PyTorch);
test input / output tensors produced by our own tile engine; our percentile
normalisation as the spec's ``scale_range``; axes whose sizes follow the network's
size multiple, with the tile overlap as the output's halo; class names as channel names;
authors, licence and citations; a cover image (input | prediction overlay); and our
whole model description under ``config["napari-segkit"]``.

Import (:func:`load_bioimageio`) reads a package zip, its folder or its ``rdf.yaml``,
and returns a :class:`~napari_segkit.models.ModelFile` that ``predict``, ``segkit
predict`` / ``submit`` and the Predict widget use like our own files. Only weight
formats that execute no pickled code are loaded: TorchScript, ONNX (onnxruntime), and a
``pytorch_state_dict`` of one of *our* architectures (built from our registry, read
with ``torch.load(weights_only=True)``). A foreign ``pytorch_state_dict`` needs the
package's Python source to be run, and Keras / TensorFlow weights need other
frameworks: both are refused with a message naming the formats the package has. Weights
given as URLs are refused too (nothing is downloaded at run time).

The package's pre-processing becomes our normalisation (``scale_range`` with
percentiles, ``zero_mean_unit_variance`` per image or fixed, ``scale_linear``;
``ensure_dtype`` to float is implied); its output activation (``sigmoid`` / ``softmax``
post-processing, or an output already in [0, 1]) decides whether the network returns
probabilities; ``binarize`` is left to our thresholds. Anything else is refused with
the operation named rather than silently ignored.
"""

from __future__ import annotations

from ..imports import is_package
from .common import CONFIG_KEY, WEIGHT_FORMATS, PackageError
from .reading import load_bioimageio, package_info
from .source import architecture_source

__all__ = [
    "CONFIG_KEY",
    "WEIGHT_FORMATS",
    "PackageError",
    "architecture_source",
    "is_package",
    "load_bioimageio",
    "package_info",
]
