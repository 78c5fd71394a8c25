"""The bundled samples and the bundled default model (napari-free).

The napari sample-data contributions, ``segkit demo``, ``segkit sample`` and the
Predict widget's preselected model all come from here.
"""

from __future__ import annotations

from pathlib import Path

#: shipped sample images and models (a symbolic link to the repository's sample_data/
#: in a checkout, a copy in a wheel)
SAMPLE_DIR = Path(__file__).parent / "sample_data"

#: the bundled default model: nuclei of real images of any kind (fluorescence, stained
#: tissue, bright-field), trained on DSB2018 by ``scripts/train_default_model.py``;
#: 3 classes (background, nucleus interior, boundary) so touching nuclei are split
DEFAULT_MODEL = SAMPLE_DIR / "nuclei_dsb2018.safetensors"

#: the previous default, trained on synthetic nuclei (2 classes: background, nucleus);
#: kept as a small, well-understood model for examples and tests
SYNTHETIC_MODEL = SAMPLE_DIR / "nuclei_unet.safetensors"

#: the bundled 3D model (a 3D U-Net trained on stacks from the 3D sample's generator, other
#: seeds: scripts/train_default_3d_model.py); ``segkit demo --sample nuclei_3d`` uses it
DEFAULT_3D_MODEL = SAMPLE_DIR / "nuclei_3d_unet.safetensors"

#: the sample names :func:`load_sample` knows
SAMPLES = ("nuclei_2d", "nuclei_3d")


def load_sample(key: str):
    """A bundled synthetic sample with its exact ground truth.

    Parameters
    ----------
    key : {"nuclei_2d", "nuclei_3d"}

    Returns
    -------
    SyntheticSample
        ``image`` (256 x 256, or 24 x 128 x 128 for the stack), ``instances`` and
        ``semantic`` labels of the same shape. Read from the files shipped in
        ``sample_data/`` when present (the same pixels, written by
        ``scripts/make_sample_data.py``), else generated.
    """
    from .core.synthetic import SyntheticSample, sample_2d, sample_3d

    if key not in SAMPLES:
        raise ValueError(f"Unknown sample {key!r}; choose one of {list(SAMPLES)}")
    files = [SAMPLE_DIR / f"{key}{suffix}.tif" for suffix in ("", "_instances", "_semantic")]
    if all(f.exists() for f in files):
        import tifffile

        return SyntheticSample(*(tifffile.imread(f) for f in files))
    return {"nuclei_2d": sample_2d, "nuclei_3d": sample_3d}[key]()


def default_model_path() -> Path:
    """Path of the bundled default model.

    Returns
    -------
    Path

    Raises
    ------
    FileNotFoundError
        The file is missing (a broken install), with the fix.
    """
    if not DEFAULT_MODEL.exists():
        raise FileNotFoundError(
            f"the bundled default model {DEFAULT_MODEL} is missing; reinstall napari-segkit or "
            "re-create it with the command in the README (section 'The bundled default model')"
        )
    return DEFAULT_MODEL


__all__ = [
    "DEFAULT_MODEL",
    "SAMPLES",
    "SAMPLE_DIR",
    "SYNTHETIC_MODEL",
    "default_model_path",
    "load_sample",
]
