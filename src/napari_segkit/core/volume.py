"""Any image as a ``(Z, Y, X, C)`` volume read region by region, and its normalisation.

Prediction reads tiles through it and training reads its planes through it, so both
see an image the same way. Nothing here loads the whole input: regions are sliced
from numpy, zarr or dask arrays (or lazily opened TIFFs) on demand, and
normalisation statistics come from a sample of regions. numpy only.
"""

from __future__ import annotations

import numpy as np

from .choices import COLOR_MODES, NORMALIZATION_MODES
from .errors import InputError
from .io import Stack


class Volume:
    """An image seen as ``(Z, Y, X, C)``, whatever its layout on disk.

    Parameters
    ----------
    image : array-like (numpy, dask, zarr) or Stack
        ``(Y, X)``, ``(Y, X, C)``, ``(Z, Y, X)``, ``(Z, Y, X, C)``, or channel-first
        ``(C, Y, X)`` / ``(C, Z, Y, X)`` when `axes` says so.
    axes : str, optional
        Letters from ``"ZYXC"``, one per dimension; inferred from the shape and
        `in_channels` when omitted.
    in_channels : int
        Channels the model expects (checked).
    color : {"as-is", "gray", "rgb"}
        How the image's channels become the model's. "as-is": the counts must match.
        "gray" (a 1-channel model): RGB and RGBA images are read as their luminance
        (alpha dropped), so colour-stained and bright-field images reach a gray model.
        "rgb" (a 3-channel model): a gray image is read as three equal channels, RGBA
        as RGB. :attr:`channels` is what :meth:`read` returns; :attr:`source_channels`
        what the image holds.
    """

    def __init__(
        self,
        image,
        *,
        axes: str | None = None,
        in_channels: int = 1,
        name=None,
        color: str = "as-is",
    ):
        stack = None
        #: named in read errors: the input's path when known
        self.name = f"'{name}'" if name else "the image"
        if isinstance(image, Stack):
            axes = axes or image.axes
            self.name = f"'{image.path}'"
            stack = image
            image = image.data
        if not hasattr(image, "shape") or not hasattr(image, "dtype"):
            image = np.asarray(image)
        shape = tuple(image.shape)
        if len(shape) < 2 or len(shape) > 4:
            raise InputError(
                f"image must have 2 to 4 dimensions ((Y, X), (Y, X, C), (Z, Y, X), "
                f"(Z, Y, X, C)), got shape {shape}"
            )
        if 0 in shape:
            raise InputError(f"image is empty: shape {shape}")
        if np.dtype(image.dtype).kind not in "biuf":
            raise InputError(f"image dtype {image.dtype} is not numeric")
        if color not in COLOR_MODES:
            raise ValueError(f"color must be one of {COLOR_MODES}, got {color!r}")
        if color != "as-is" and in_channels != {"gray": 1, "rgb": 3}[color]:
            raise ValueError(
                f"color={color!r} is for a {'1' if color == 'gray' else '3'}-channel model, "
                f"not one of {in_channels} channels"
            )
        if axes is None:
            axes = (
                _infer_color_axes(shape) if color != "as-is" else _infer_axes(shape, in_channels)
            )
        axes = axes.upper()
        if (
            len(axes) != len(shape)
            or set(axes) - set("ZYXC")
            or len(set(axes)) != len(axes)
            or not {"Y", "X"} <= set(axes)
        ):
            raise InputError(
                f"axes {axes!r} do not describe an image of shape {shape}: "
                "use one letter of Z, Y, X, C per dimension, with Y and X"
            )
        from .io import zarr_source

        # a dask view of a zarr array is read through the zarr array itself (faster)
        self.image, self.axes = zarr_source(image) or image, axes
        sizes = dict(zip(axes, shape, strict=False))
        self.source_channels = sizes.get("C", 1)
        self.color = color
        if color != "as-is" and self.source_channels not in (1, 3, 4):
            raise InputError(
                f"the image of shape {shape} (axes {axes}) has {self.source_channels} channels; "
                f"color={color!r} converts 1 (gray), 3 (RGB) or 4 (RGBA) channels"
            )
        self.channels = in_channels if color != "as-is" else self.source_channels
        if self.channels != in_channels:
            raise InputError(
                f"the model expects {in_channels} channel(s) but the image of shape "
                f"{shape} (axes {axes}) has {self.channels}"
            )
        self.shape = (sizes.get("Z", 1), sizes["Y"], sizes["X"], self.channels)
        self.spatial_shape = tuple(sizes[a] for a in "ZYX" if a in sizes)
        self.is_stack = "Z" in sizes
        #: pixel size per spatial axis (Z, Y, X present) when the input says, else None
        self.scale = None
        if stack is not None and any(s != 1.0 for s in stack.spatial_scale):
            self.scale = tuple(float(s) for s in stack.spatial_scale)[-len(self.spatial_shape) :]

    def read(
        self, z: int, ys: slice, xs: slice, pad_to: tuple[int, int] | None = None, dtype=np.float32
    ) -> np.ndarray:
        """Region ``[z, ys, xs]`` as ``(C, h, w)`` of `dtype` (None: the image's own; float32
        after a conversion to gray), C the model's channels (see `color`); coordinates
        outside the image (negative or past the end) are filled by reflection."""
        return convert_channels(self._read_source(z, ys, xs, dtype), self.color)

    def _read_source(self, z: int, ys: slice, xs: slice, dtype) -> np.ndarray:
        """Region ``[z, ys, xs]`` as ``(C_source, h, w)``, reflected beyond the edges."""
        _, ny, nx, _ = self.shape
        y0, y1, x0, x1 = max(ys.start, 0), min(ys.stop, ny), max(xs.start, 0), min(xs.stop, nx)
        index = {"Z": z, "Y": slice(y0, y1), "X": slice(x0, x1), "C": slice(None)}
        region = self._fetch(index, dtype, f"plane {z}, rows {y0}:{y1}, columns {x0}:{x1}")
        kept = [a for a in self.axes if a != "Z"]
        region = region.transpose([kept.index(a) for a in "CYX" if a in kept])
        if "C" not in kept:
            region = region[None]
        pad = ((0, 0), (y0 - ys.start, ys.stop - y1), (x0 - xs.start, xs.stop - x1))
        if any(p for pair in pad for p in pair):
            region = _reflect_pad(region, pad)
        return region

    def _fetch(self, index: dict, dtype, what: str) -> np.ndarray:
        """``self.image`` at `index` (by axis letter) as a numpy array of `dtype`; an
        unreadable chunk is an InputError naming `what` was read."""
        try:
            region = self.image[tuple(index[a] for a in self.axes)]
            if hasattr(region, "dask"):
                # the caller's thread is the parallelism (the engine's reader thread, a
                # dask worker): dask's own thread pool per region only adds overhead
                region = region.compute(scheduler="synchronous")
            return np.asarray(region, dtype=dtype)
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 -- codecs and stores raise anything
            raise InputError(
                f"cannot read {what} of {self.name}: {type(err).__name__}: {err} (a corrupt "
                "or unreadable chunk?)"
            ) from err

    def read_slab(self, zs: slice, ys: slice, xs: slice) -> np.ndarray:
        """Region ``[zs, ys, xs]`` as ``(C, d, h, w)`` float32 in one read of the source
        (a chunked 3D store decompresses each chunk once, not once per plane); planes,
        rows and columns outside the volume are reflected. For 3D models' tiles.

        Parameters
        ----------
        zs, ys, xs : slice
            May reach outside the volume.

        Returns
        -------
        ndarray
        """
        nz, ny, nx, _ = self.shape
        if not self.is_stack:
            raise InputError("read_slab needs a stack (Z, Y, X)")
        z0, z1 = max(zs.start, 0), min(zs.stop, nz)
        y0, y1, x0, x1 = max(ys.start, 0), min(ys.stop, ny), max(xs.start, 0), min(xs.stop, nx)
        index = {"Z": slice(z0, z1), "Y": slice(y0, y1), "X": slice(x0, x1), "C": slice(None)}
        what = f"planes {z0}:{z1}, rows {y0}:{y1}, columns {x0}:{x1}"
        region = self._fetch(index, np.float32, what)
        region = region.transpose([self.axes.index(a) for a in "CZYX" if a in self.axes])
        if "C" not in self.axes:
            region = region[None]
        region = np.stack(
            [convert_channels(region[:, i], self.color) for i in range(region.shape[1])], axis=1
        )
        pad = (
            (0, 0),
            (z0 - zs.start, zs.stop - z1),
            (y0 - ys.start, ys.stop - y1),
            (x0 - xs.start, xs.stop - x1),
        )
        if any(p for pair in pad for p in pair):
            region = _reflect_pad(region, pad)
        return region

    def read_pixels(self, z: int, ys: slice, xs: slice) -> np.ndarray:
        """Region ``[z, ys, xs]`` in the image's own dtype: ``(C, h, w)``, or ``(h, w)`` for
        one channel (what an OME-Zarr output copies of its input)."""
        region = self._read_source(z, ys, xs, dtype=None)
        return region[0] if self.source_channels == 1 else region

    def sample_regions(self, n: int = 16, size: int = 256, seed: int = 0):
        """Up to `n` random regions (for normalisation statistics), each ``(C, h, w)``."""
        rng = np.random.default_rng(seed)
        nz, ny, nx, _ = self.shape
        if nz * ny * nx <= n * size * size:  # small: everything
            for z in range(nz):
                yield self.read(z, slice(0, ny), slice(0, nx))
            return
        for _ in range(n):
            z = int(rng.integers(nz))
            y = int(rng.integers(max(ny - size, 0) + 1))
            x = int(rng.integers(max(nx - size, 0) + 1))
            yield self.read(z, slice(y, min(y + size, ny)), slice(x, min(x + size, nx)))


#: luminance weights of ``skimage.color.rgb2gray`` (ITU-R BT.709). Applied here to
#: channel-first regions of any dtype and range: rgb2gray would rescale integers to [0, 1]
#: and wants channels last, and normalisation is computed afterwards anyway.
_LUMINANCE = np.array([0.2125, 0.7154, 0.0721], np.float32)


def convert_channels(region: np.ndarray, color: str) -> np.ndarray:
    """A ``(C, h, w)`` region's channels as a model with colour mode `color` takes them.

    Parameters
    ----------
    region : ndarray, shape (C, h, w)
        C is 1, 3 or 4 unless `color` is "as-is".
    color : {"as-is", "gray", "rgb"}
        See :class:`Volume`.

    Returns
    -------
    ndarray
        ``(C, h, w)`` unchanged for "as-is"; ``(1, h, w)`` float32 luminance for "gray"
        (a one-channel region unchanged); ``(3, h, w)`` for "rgb" (alpha dropped, a
        one-channel region repeated).

    Examples
    --------
    >>> rgba = np.zeros((4, 1, 1), np.uint8); rgba[:3] = 100; rgba[3] = 255
    >>> convert_channels(rgba, "gray").round(3)
    array([[[100.]]], dtype=float32)
    >>> convert_channels(rgba, "rgb").shape
    (3, 1, 1)
    """
    if color == "as-is":
        return region
    region = region[:3]  # RGBA: the alpha channel is not image content
    if color == "gray":
        if region.shape[0] == 1:
            return region
        return np.tensordot(_LUMINANCE, region.astype(np.float32, copy=False), axes=1)[None]
    return np.repeat(region, 3, axis=0) if region.shape[0] == 1 else region


def _infer_color_axes(shape: tuple[int, ...]) -> str:
    """Axes of a gray or colour image for a colour-converting volume: a last axis of 3
    or 4 is colour (napari's RGB convention), anything else is gray -- except a last
    axis of 2 behind a longer first one, which is far more often two channels than a
    stack of two-pixel-wide planes, so it is refused rather than guessed (as the
    one-channel rule in :func:`_infer_axes` does)."""
    ndim = len(shape)
    if ndim == 2:
        return "YX"
    colour = shape[-1] in (3, 4) or (shape[-1] == 1)
    if ndim == 3:
        if shape[-1] == 2 and shape[0] > 4:
            z, y, _ = shape
            raise InputError(
                f"the image of shape {shape} is ambiguous: it reads as (Y, X, C) = {z} x {y} "
                f"with 2 channels, which a gray or colour model cannot take (give it one "
                f"channel, e.g. image[..., 0]), or as (Z, Y, X) = {z} planes of {y} x 2 "
                "(pass axes='ZYX')"
            )
        return "YXC" if colour else "ZYX"
    if colour:
        return "ZYXC"
    raise InputError(
        f"cannot tell the axes of a 4D image of shape {shape}: pass axes=... "
        "(e.g. 'ZYXC' or 'CZYX')"
    )


def _infer_axes(shape: tuple[int, ...], in_channels: int) -> str:
    ndim = len(shape)
    if ndim == 2:
        return "YX"
    if in_channels > 1:
        if shape[-1] == in_channels:
            return "YXC" if ndim == 3 else "ZYXC"
        if shape[0] == in_channels:
            return "CYX" if ndim == 3 else "CZYX"
        raise InputError(
            f"the model expects {in_channels} channels but no axis of the image "
            f"of shape {shape} has that size: pass axes=..."
        )
    # one channel: a trailing (or, for 4D, leading) axis of size 1 is the channel axis
    if ndim == 3:
        if 2 <= shape[-1] <= 4 and shape[0] > 4:
            z, y, x = shape
            raise InputError(
                f"the model expects 1 channel and the image of shape {shape} is ambiguous: it reads "
                f"as (Y, X, C) = {z} x {y} with {x} channels, or as (Z, Y, X) = {z} planes of "
                f"{y} x {x}; pass axes='YXC' (and a model with {x} channels, or one channel "
                "of the image) or axes='ZYX'"
            )
        return "YXC" if shape[-1] == 1 else "ZYX"
    if shape[-1] == 1:
        return "ZYXC"
    if shape[0] == 1:
        return "CZYX"
    raise InputError(
        f"cannot tell the axes of a 4D image of shape {shape} for a 1-channel model: pass axes=..."
    )


def _reflect_pad(region: np.ndarray, pad) -> np.ndarray:
    """Reflect padding that also works when the pad exceeds the region (repeats the reflection)."""
    while any(p for pair in pad for p in pair):
        step = tuple(
            (min(a, s - 1), min(b, s - 1)) for (a, b), s in zip(pad, region.shape, strict=False)
        )
        if not any(p for pair in step for p in pair):  # 1-pixel-wide region: nothing to reflect
            return np.pad(region, pad, mode="edge")
        region = np.pad(region, step, mode="reflect")
        pad = tuple((a - sa, b - sb) for (a, b), (sa, sb) in zip(pad, step, strict=False))
    return region


# --------------------------------------------------------------------------- normalisation


def normalization_stats(volume: Volume, normalization: dict | None) -> dict | None:
    """Resolve a normalisation spec into fixed per-channel ``offset`` and ``scale``.

    ``{"mode": "percentile", "low": 1, "high": 99.8}`` computes the percentiles per
    channel over a sample of regions (not the whole volume); ``{"mode": "meanstd",
    "per_channel": False, "eps": 1e-6}`` maps to zero mean and unit variance over the
    same sample (bioimage.io's ``zero_mean_unit_variance``); ``{"mode": "fixed",
    "mean": [...], "std": [...]}`` is used as given; None / ``{"mode": "none"}``
    leaves values as they are. The result maps ``x -> (x - offset) / scale``.

    A percentile spec with ``"invert": "auto"`` also turns images with a bright
    background (bright-field, stained tissue) into dark-background ones like
    fluorescence: when the median (the background, for objects covering less than
    half of the image) lies in the upper half of the ``low``..``high`` range, the
    mapping is ``x -> (high - x) / (high - low)`` (``offset`` = high, negative
    ``scale``, and ``"inverted": True`` in the result).

    Parameters
    ----------
    volume : Volume
    normalization : dict or None
        The spec, e.g. ``{"mode": "percentile", "low": 1, "high": 99.8}``.

    Returns
    -------
    dict or None
        ``{"offset": [C floats], "scale": [C floats]}``; None for no normalisation.

    Raises
    ------
    InputError
        Unknown mode, or NaN / infinite values in the sampled regions.
    """
    mode = (normalization or {}).get("mode", "none")
    c = volume.channels
    if mode == "none":
        return None
    if mode == "fixed":
        mean = np.broadcast_to(np.asarray(normalization["mean"], np.float32), (c,))
        std = np.broadcast_to(np.asarray(normalization["std"], np.float32), (c,))
        return {"offset": mean.tolist(), "scale": np.maximum(std, 1e-8).tolist()}
    if mode not in NORMALIZATION_MODES:
        raise InputError(
            f"unknown normalization mode {mode!r} (use one of {', '.join(NORMALIZATION_MODES)})"
        )
    values = np.concatenate([r.reshape(c, -1) for r in volume.sample_regions()], axis=1)
    if not np.isfinite(values).all():
        raise InputError("image contains NaN or infinite values")
    if mode == "meanstd":  # bioimage.io's zero_mean_unit_variance: (x - mean) / (std + eps)
        eps = float(normalization.get("eps", 1e-6))
        if normalization.get("per_channel", False):
            mean, std = values.mean(axis=1), values.std(axis=1)
        else:
            mean = np.full(c, values.mean())
            std = np.full(c, values.std())
        return {"offset": mean.tolist(), "scale": (std + eps).tolist()}
    # percentile
    low, high = float(normalization.get("low", 1.0)), float(normalization.get("high", 99.8))
    lo, hi = np.percentile(values, [low, high], axis=1)
    span = np.maximum(hi - lo, 1e-8)
    invert = normalization.get("invert", False)
    if invert == "auto":
        invert = bool(np.mean((np.median(values, axis=1) - lo) / span) > 0.5)
    if invert:
        return {"offset": hi.tolist(), "scale": (-span).tolist(), "inverted": True}
    return {"offset": lo.tolist(), "scale": span.tolist()}


#: the share of the pixels that objects cover in a typical training image: the median
#: over the 544 DSB2018 training images is 0.111 (fluorescence 0.092, tissue 0.215)
TYPICAL_OBJECT_SHARE = 0.1

#: how far beyond the image's own range objects must reach, in units of its low..high
#: span, before :func:`sparse_object_normalization` re-anchors on them: in the DSB2018
#: fluorescence images the objects' re-anchored high end lies at 1.00 (median) and 1.44
#: (95th percentile) spans above the low end
OVERSCALE = 2.0


def sparse_object_normalization(
    volume: Volume, normalization: dict | None, foreground: np.ndarray
) -> dict | None:
    """Percentile normalisation re-anchored on objects too sparse for it, or None.

    A percentile spec maps the image's ``low`` and ``high`` percentiles to 0 and 1. Bright
    objects on a dark background (fluorescence) reach the ``high`` end only when they
    cover more than ``100 - high`` % of the pixels (0.2 % for 99.8), dark ones on a bright
    background (bright-field, stained tissue) the ``low`` end only above ``low`` % (1 %).
    In a large field with a few nuclei the percentile falls on the background instead,
    the nuclei come out many times brighter (or darker) than any the model was trained
    on, and are segmented badly (real nuclei in the corner of 2048 x 2048 fields, 0.07 %
    of them: mean AP 0.18 instead of 0.56 on fluorescence, 0.09 instead of 0.41 on
    tissue; ``scripts/check_sparse_fields.py``). Given where a first prediction found
    objects, this returns the statistics the image would have if its objects covered a
    typical share of it (:data:`TYPICAL_OBJECT_SHARE`): the ``100 - (100 - high) /
    share`` th percentile of the object pixels as the high end (the 98th for 99.8), or
    their ``low / share`` th as the low end (the 10th for 1); the other end stays the
    image's.

    Parameters
    ----------
    volume : Volume
        The image as the model sees its channels.
    normalization : dict or None
        The model's spec.
    foreground : ndarray of bool, shape (Y, X) or (Z, Y, X)
        Where the first prediction found objects (any class but 0).

    Returns
    -------
    dict or None
        ``{"mode": "fixed", "mean": [C floats], "std": [C floats]}`` for ``predict``'s
        `normalization`; None -- keep the first prediction -- unless the spec is a
        percentile one without inversion (whose ends swap), the objects cover less of
        the image than the end they should reach assumes, and their re-anchored end lies
        more than :data:`OVERSCALE` spans beyond the image's other end (objects far
        outside the image's range, not specks of noise).
    """
    spec = normalization or {}
    if spec.get("mode") != "percentile" or spec.get("invert", False):
        return None
    foreground = foreground.reshape((-1, *foreground.shape[-2:]))
    low, high = float(spec.get("low", 1.0)), float(spec.get("high", 99.8))
    share = float(foreground.mean())
    if share == 0 or share >= max(100 - high, low) / 100:
        return None
    stats = normalization_stats(volume, spec)
    lo, span = np.asarray(stats["offset"]), np.asarray(stats["scale"])
    _, ny, nx, _ = volume.shape
    values = np.concatenate(
        [
            volume.read(z, slice(0, ny), slice(0, nx))[:, mask]
            for z, mask in enumerate(foreground)
            if mask.any()
        ],
        axis=1,
    )
    if share < (100 - high) / 100:  # bright objects: re-anchor the high end
        objects_hi = np.percentile(values, 100 - (100 - high) / TYPICAL_OBJECT_SHARE, axis=1)
        if np.mean((objects_hi - lo) / span) > OVERSCALE:
            return _fixed_range(lo, objects_hi)
    if share < low / 100:  # dark objects: re-anchor the low end
        objects_lo = np.percentile(values, low / TYPICAL_OBJECT_SHARE, axis=1)
        if np.mean((lo + span - objects_lo) / span) > OVERSCALE:
            return _fixed_range(objects_lo, lo + span)
    return None


def _fixed_range(low_end: np.ndarray, high_end: np.ndarray) -> dict:
    """The "fixed" spec mapping per-channel `low_end` to 0 and `high_end` to 1."""
    return {"mode": "fixed", "mean": low_end.tolist(), "std": (high_end - low_end).tolist()}


def apply_normalization(region: np.ndarray, stats: dict | None) -> np.ndarray:
    """``(C, h, w)`` float32 region normalised with :func:`normalization_stats`' result.

    Parameters
    ----------
    region : ndarray of float32, shape (C, h, w)
    stats : dict or None
        From :func:`normalization_stats`.

    Returns
    -------
    ndarray of float32, shape (C, h, w)
        ``(region - offset) / scale`` per channel (`region` itself when `stats` is None).

    Examples
    --------
    >>> apply_normalization(np.ones((1, 1, 2), np.float32), {"offset": [0.5], "scale": [2.0]})
    array([[[0.25, 0.25]]], dtype=float32)
    """
    if stats is None:
        return region
    offset = np.asarray(stats["offset"], np.float32)[:, None, None]
    scale = np.asarray(stats["scale"], np.float32)[:, None, None]
    return (region - offset) / scale
