"""Names shared by the bioimage.io writer and reader."""

from __future__ import annotations

from ..info import ModelFileError

#: the weight formats written, in the order consumers should prefer them
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
#: the package keys napari-segkit uses in ``config``
CONFIG_KEY = "napari-segkit"
#: the callable the generated architecture source defines
ARCH_CALLABLE = "segkit_network"


class PackageError(ModelFileError):
    """A bioimage.io package cannot be exported or imported (the message says why)."""


# --------------------------------------------------------------------------- export
