"""Exceptions raised by napari-segkit's readers and writers.

Every error subclasses :class:`StackReadError` (itself a ``ValueError``) or
:class:`StackWriteError`, and its message names the path and the problem, so a
napari notification or a CLI message is enough for the user to fix the input.
A missing path raises the built-in :class:`FileNotFoundError`.
"""

from __future__ import annotations


class StackReadError(ValueError):
    """The path exists but cannot be read as an image stack."""


class UnsupportedFormatError(StackReadError):
    """The file extension (or folder content) is not a format napari-segkit reads."""


class CorruptFileError(StackReadError):
    """The file has a supported extension but its content cannot be decoded."""


class EmptyFolderError(StackReadError):
    """A folder holds no image slices."""


class SliceShapeError(StackReadError):
    """The slices of a folder (or DICOM series) do not all have the same shape/dtype."""


class IncompleteOutputError(StackReadError):
    """A prediction output that was interrupted (not marked complete)."""


class InputError(ValueError):
    """An image cannot be segmented as given: wrong shape, axes, channels, or values."""


class StackWriteError(ValueError):
    """Data cannot be written to the requested path (bad extension, dtype or existing output)."""
