"""Training data: checked (image, labels) pairs and a dataset of augmented random patches.

Label conventions (napari's): with ``sparse=False`` pixel values are class ids
``0 .. K-1`` (0 = background); with ``sparse=True`` (scribbles, partial annotation)
0 means *unlabeled* and classes are ``1 .. K``. Internally targets are ``0 .. K-1``
with :data:`IGNORE_INDEX` for unlabeled pixels, which the losses leave out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.augment import Augmentation
from ..core.weight_maps import unet_weight_map

IGNORE_INDEX = -1


class TrainingDataError(ValueError):
    """The images / labels given for training cannot be used (the message says why)."""


@dataclass
class TrainingSet:
    """Checked training planes.

    Attributes
    ----------
    images : list of ndarray, float32, shape (C, H, W)
        Normalised planes (stacks are split into their Z planes); for 3D models whole
        volumes ``(C, D, H, W)``.
    targets : list of ndarray, int64, shape (H, W) (or (D, H, W))
        Class ids ``0 .. K-1``, or ``IGNORE_INDEX`` where unlabeled.
    num_classes : int
    source : list of (int, int)
        (pair index, plane index) of each plane.
    in_channels : int
    """

    images: list
    targets: list
    num_classes: int
    source: list = field(default_factory=list)
    in_channels: int = 1

    def subset(self, indices) -> TrainingSet:
        """The planes at `indices` (for validation splits and folds)."""
        return TrainingSet(
            [self.images[i] for i in indices],
            [self.targets[i] for i in indices],
            self.num_classes,
            [self.source[i] for i in indices],
            self.in_channels,
        )

    def class_pixel_counts(self) -> np.ndarray:
        counts = np.zeros(self.num_classes, np.int64)
        for t in self.targets:
            valid = t[t != IGNORE_INDEX]
            counts += np.bincount(valid, minlength=self.num_classes)[: self.num_classes]
        return counts


def prepare_training_set(
    images,
    labels,
    *,
    num_classes: int | None = None,
    sparse: bool = False,
    in_channels: int = 1,
    normalization: dict | None = None,
    color: str = "as-is",
    spatial_dims: int = 2,
) -> TrainingSet:
    """Check (image, labels) pairs and turn them into normalised 2D planes (or, for a 3D
    model, normalised volumes).

    Parameters
    ----------
    images : list of array
        Each ``(Y, X)``, ``(Y, X, C)``, ``(Z, Y, X)`` or ``(Z, Y, X, C)`` (numpy or dask).
    labels : list of array of int
        Each ``(Y, X)`` or ``(Z, Y, X)``, matching its image's spatial shape.
    num_classes : int, optional
        K; inferred from the largest label when omitted.
    sparse : bool
        0 = unlabeled, classes 1..K.
    in_channels : int
    normalization : dict, optional
        ``{"mode": "percentile", "low": 1, "high": 99.8}`` (default, per image).
    color : {"as-is", "gray", "rgb"}
        How images' channels become the model's (see
        :class:`~napari_segkit.core.volume.Volume`): "gray" trains a 1-channel model on
        gray and colour images alike.
    spatial_dims : {2, 3}
        3: keep each stack whole, for a 3D model (every labels image must be a stack).

    Returns
    -------
    TrainingSet
        ``images`` float32 ``(C, Y, X)`` planes, ``targets`` int64 ``(Y, X)`` (unlabeled
        pixels = ``IGNORE_INDEX``), ``num_classes``, ``in_channels``, ``source``.

    Raises
    ------
    TrainingDataError
        Empty or unequal lists, shape mismatch, NaN/inf in an image, labels beyond
        `num_classes`, no labelled pixel at all.
    """
    from ..core.choices import DEFAULT_NORMALIZATION
    from ..core.errors import InputError
    from ..core.volume import Volume, apply_normalization, normalization_stats

    if isinstance(images, np.ndarray) or isinstance(labels, np.ndarray):
        raise TrainingDataError("images and labels must be lists of arrays (one entry per image)")
    images, labels = list(images), list(labels)
    if not images:
        raise TrainingDataError("no training images were given")
    if len(images) != len(labels):
        raise TrainingDataError(f"{len(images)} images but {len(labels)} label images")
    normalization = normalization or DEFAULT_NORMALIZATION
    out_images, out_targets, source, max_label = [], [], [], 0
    for i, (image, label) in enumerate(zip(images, labels, strict=False)):
        label = np.asarray(label)
        if label.dtype.kind not in "biu":
            raise TrainingDataError(f"labels #{i} must be integers, got dtype {label.dtype}")
        try:
            # the labels tell the spatial axes; an image with one more axis has channels last
            axes = None
            if (in_channels == 1 or color != "as-is") and np.ndim(image) == label.ndim:
                axes = "YX" if label.ndim == 2 else "ZYX"
            elif color != "as-is" and np.ndim(image) == label.ndim + 1:
                axes = "YXC" if label.ndim == 2 else "ZYXC"
            volume = Volume(image, in_channels=in_channels, axes=axes, color=color)
        except InputError as err:
            raise TrainingDataError(f"image #{i}: {err}") from err
        if tuple(volume.spatial_shape) != label.shape:
            raise TrainingDataError(
                f"image #{i} has spatial shape {tuple(volume.spatial_shape)} but "
                f"its labels have shape {label.shape}"
            )
        try:
            stats = normalization_stats(volume, normalization)
        except InputError as err:
            raise TrainingDataError(f"image #{i}: {err}") from err
        if spatial_dims == 3:
            if label.ndim != 3:
                raise TrainingDataError(
                    f"labels #{i} have shape {label.shape}: a 3D model trains on stacks "
                    "(Z, Y, X); use a 2D architecture for 2D images"
                )
            planes = [
                apply_normalization(
                    volume.read(z, slice(0, volume.shape[1]), slice(0, volume.shape[2])), stats
                )
                for z in range(label.shape[0])
            ]
            stacked = np.stack(planes, axis=1).astype(np.float32)
            if not np.isfinite(stacked).all():
                raise TrainingDataError(f"image #{i} contains NaN or infinite values")
            out_images.append(stacked)
            out_targets.append(label.astype(np.int64))
            source.append((i, None))
            planes = []
        else:
            planes = label[None] if label.ndim == 2 else label
        for z, plane_labels in enumerate(planes):
            plane = volume.read(z, slice(0, volume.shape[1]), slice(0, volume.shape[2]))
            if not np.isfinite(plane).all():
                raise TrainingDataError(f"image #{i} (plane {z}) contains NaN or infinite values")
            out_images.append(apply_normalization(plane, stats).astype(np.float32))
            out_targets.append(plane_labels.astype(np.int64))
            source.append((i, z))
        max_label = max(max_label, int(label.max(initial=0)))
        if label.min(initial=0) < 0:
            raise TrainingDataError(f"labels #{i} hold negative values")
    present = np.flatnonzero(
        sum(np.bincount(t.ravel(), minlength=max_label + 1) for t in out_targets)
    )
    if num_classes is None:
        _refuse_sparse_ids(present, sparse)
    k = num_classes if num_classes is not None else (max_label if sparse else max_label + 1)
    k = max(int(k), 1 if sparse else 2)
    if not sparse and present.tolist() == [0]:
        raise TrainingDataError(
            "the labels hold only class 0 (background): there is nothing to learn; paint "
            "the objects first (or pass sparse=True if 0 means unlabeled)"
        )
    limit = k if sparse else k - 1
    if max_label > limit:
        raise TrainingDataError(
            f"labels hold class {max_label} but num_classes={k} allows "
            + (f"1..{k} (sparse: 0 = unlabeled)" if sparse else f"0..{k - 1}")
        )
    if sparse:
        out_targets = [np.where(t > 0, t - 1, IGNORE_INDEX) for t in out_targets]
        if all((t == IGNORE_INDEX).all() for t in out_targets):
            raise TrainingDataError(
                "no pixel is labelled (sparse=True treats 0 as unlabeled): "
                "paint some pixels of each class first"
            )
    return TrainingSet(out_images, out_targets, k, source, in_channels)


def _refuse_sparse_ids(present: np.ndarray, sparse: bool) -> None:
    """Class ids must be 0..K-1 (1..K sparse): 0/255 masks would train a 256-class model."""
    top = int(present.max(initial=0))
    n_ids = top if sparse else top + 1
    if n_ids > 2 and present.size <= n_ids / 2:
        shown = ", ".join(str(v) for v in present[:8]) + (" ..." if present.size > 8 else "")
        raise TrainingDataError(
            f"the labels hold the values {shown}: class ids must be consecutive, "
            f"{'1' if sparse else '0'}..K{'' if sparse else '-1'} (taken as is they would make "
            f"a {n_ids}-class model). A mask saved as 0/255? Use labels > 0. Or pass "
            "num_classes= to train with these ids anyway."
        )


class PatchDataset(torch.utils.data.Dataset):
    """Random augmented patches from a :class:`TrainingSet`, reproducible from a seed.

    Item ``i`` of epoch ``e`` is drawn from its own generator seeded by
    ``(seed, e, i)``, so the data do not depend on DataLoader worker scheduling.

    Parameters
    ----------
    data : TrainingSet
    patch_size : int
        Side of the patches: squares, or for volumes ``(min(p, deepest volume), p, p)``.
    length : int
        Patches per epoch.
    augmentation : Augmentation, optional
    rare_class_fraction : float
        Fraction of patches centred on a pixel of a randomly chosen class (all classes
        equally likely), so rare classes are seen often enough.
    border_weights : dict, optional
        ``{"w0": 10, "sigma": 5}``: also return the U-Net border weight map of each patch
        (for volumes with 3D distances; ``"spacing": (z, y, x)`` gives the voxel size).
        ``"objects": "interior"`` measures the distances to the connected regions of
        class 1 instead of the whole foreground: for background / interior / boundary
        targets, whose touching objects form one foreground region, so that the border
        term lands on the boundary pixels between touching objects. The maps are
        computed once per plane (objects cut by a patch edge keep their true distances,
        and no patch pays for the distance transforms again), then cropped and augmented
        with the patch.
    seed : int

    Items
    -----
    ``(image (C, P, P) float32, target (P, P) int64, weights (P, P) float32)``; the
    weights are ones without `border_weights` (volumes: ``(C, Pz, P, P)`` and so on).
    """

    def __init__(
        self,
        data: TrainingSet,
        *,
        patch_size: int = 256,
        length: int = 256,
        augmentation: Augmentation | None = None,
        rare_class_fraction: float = 0.3,
        border_weights: dict | None = None,
        seed: int = 0,
    ):
        self.data, self.patch_size, self.length = data, int(patch_size), int(length)
        self.augmentation = augmentation
        self.rare_class_fraction = rare_class_fraction
        self.border_weights = border_weights
        self.weight_maps = None
        if border_weights is not None:
            options = dict(border_weights)
            spacing = options.pop("spacing", None)
            objects = options.pop("objects", "foreground")
            if objects not in ("foreground", "interior"):
                raise ValueError(f"objects must be 'foreground' or 'interior', got {objects!r}")
            # a volume's map has 3D distances (with its voxel spacing; isotropic if unknown)
            self.weight_maps = [
                unet_weight_map(
                    ((t == 1) if objects == "interior" else (t > 0)).astype(np.uint8),
                    kind="semantic",
                    spacing=(spacing or (1.0,) * 3) if t.ndim == 3 else None,
                    **options,
                )
                for t in data.targets
            ]
        self.seed, self.epoch = seed, 0
        p = int(patch_size)
        depth = max((t.shape[0] for t in data.targets if t.ndim == 3), default=p)
        #: per spatial axis: (P, P), or (min(P, deepest volume), P, P)
        self.patch_shape = (min(p, depth), p, p) if data.targets[0].ndim == 3 else (p, p)
        # where each class occurs (flat indices per plane), for rare-class sampling
        self.class_pixels = [
            [np.flatnonzero(t == c) for t in data.targets] for c in range(data.num_classes)
        ]

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        plane, centre = self._choose(rng)
        if self.augmentation is None:
            image, target, weights = self._crop(plane, centre, self.patch_shape)
        else:
            # a zoomed patch is resampled from a window of patch / zoom pixels around the
            # centre, so zooming out shows more of the plane instead of mirrored content
            zoom = self.augmentation.draw_zoom(rng)
            window = self.patch_shape[:-2] + (max(int(round(self.patch_size / zoom)), 1),) * 2
            image, target, weights = self._crop(plane, centre, window)
            image, target, weights = self.augmentation(
                rng, image, target, weights, out_shape=self.patch_shape
            )
        if weights is None:
            weights = np.ones(target.shape, np.float32)
        return torch.from_numpy(image), torch.from_numpy(target), torch.from_numpy(weights)

    def _choose(self, rng):
        if rng.random() < self.rare_class_fraction:
            present = [
                c
                for c in range(self.data.num_classes)
                if any(len(p) for p in self.class_pixels[c])
            ]
            c = present[rng.integers(len(present))]
            planes = [i for i, p in enumerate(self.class_pixels[c]) if len(p)]
            plane = planes[rng.integers(len(planes))]
            flat = self.class_pixels[c][plane][rng.integers(len(self.class_pixels[c][plane]))]
            return plane, np.unravel_index(flat, self.data.targets[plane].shape)
        plane = int(rng.integers(len(self.data.images)))
        shape = self.data.targets[plane].shape
        return plane, tuple(int(rng.integers(n)) for n in shape)

    def _crop(self, plane: int, centre, sizes):
        """A window of shape `sizes` around `centre`, shifted inside the plane;
        reflect-padded if the plane is small.

        Returns image, target and weight map (None without border weights).
        """
        image, target = self.data.images[plane], self.data.targets[plane]
        weights = None if self.weight_maps is None else self.weight_maps[plane]
        starts = [
            int(np.clip(c - p // 2, 0, max(n - p, 0)))
            for c, n, p in zip(centre, target.shape, sizes, strict=True)
        ]
        sl = tuple(slice(s, s + p) for s, p in zip(starts, sizes, strict=True))
        image, target = image[(slice(None), *sl)], target[sl]
        weights = None if weights is None else weights[sl]
        pad = [(0, p - n) for n, p in zip(target.shape, sizes, strict=True)]
        if any(b for _, b in pad):
            image = np.pad(
                image, [(0, 0), *pad], mode="reflect" if min(target.shape) > 1 else "edge"
            )
            target = np.pad(target, pad, constant_values=IGNORE_INDEX)  # padding is not labelled
            weights = None if weights is None else np.pad(weights, pad, constant_values=1.0)
        return (
            np.ascontiguousarray(image),
            np.ascontiguousarray(target),
            None if weights is None else np.ascontiguousarray(weights),
        )
