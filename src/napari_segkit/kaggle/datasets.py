"""Dataset layouts used by competitions and papers, read into (image, labels) samples.

- **RLE CSV** beside an image folder (Kaggle ``train.csv`` style): ``id, rle[, class]``;
  several rows per id are several objects (instances) or classes.
- **DSB2018 folders**: ``<id>/images/<id>.png`` and ``<id>/masks/*.png``, one mask per
  nucleus, merged into instance and semantic labels.
- **Paired folders** (CamVid style ``train/`` + ``trainannot/``): class ids as pixel
  values, files matched by name.
- **Instance folders** (StarDist style ``images/`` + ``masks/``): one integer id per
  object in each mask, files matched by name; ``scripts/pack_dsb2018.py`` writes DSB2018
  this way (one mask file per image instead of one per nucleus: a fifth of the bytes).
- **Stacks** (ISBI 2012 style): an image stack and a label stack, plane by plane.

Every reader returns a list of :class:`DatasetSample`, ready for
:func:`napari_segkit.train` (``[s.image for s in samples], [s.labels for s in samples]``).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import EmptyFolderError, StackReadError
from ..core.io import SLICE_SUFFIXES, is_zarr_store, natural_key, read_stack
from ..core.rle import RLEError, rle_decode


@dataclass
class DatasetSample:
    """One image with its labels.

    Attributes
    ----------
    id : str
    image : ndarray, (Y, X) or (Y, X, C) (an alpha channel is dropped)
    labels : ndarray of int, (Y, X): class ids (0 background)
    instances : ndarray of int, (Y, X), or None: one id per object where the layout has them
    """

    id: str
    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None = None


def rescaled_sample(sample: DatasetSample, factor: float, *, image_dtype=None) -> DatasetSample:
    """`sample` magnified by `factor` in Y and X, as if imaged at another pixel size.

    The image is resampled bilinearly (anti-aliased when shrinking); class labels and
    instances by nearest neighbour, so no new ids appear.

    Parameters
    ----------
    sample : DatasetSample
        A 2D sample: image (Y, X) or (Y, X, C).
    factor : float
        Above 1 magnifies; each side becomes ``round(n * factor)`` pixels (at least 1).
    image_dtype : numpy dtype, optional
        The rescaled image's dtype; None keeps the sample's (integers rounded and clipped
        to the dtype's range).

    Returns
    -------
    DatasetSample
        With the same id.
    """
    from skimage.transform import resize

    from ..core.object_size import rescale_planes

    image = rescale_planes(sample.image, factor, spatial_axes=(0, 1))  # float32
    dtype = np.dtype(image_dtype or sample.image.dtype)
    if dtype.kind in "iu":
        image = np.clip(np.round(image), np.iinfo(dtype).min, np.iinfo(dtype).max)

    def nearest(labels):
        if labels is None:
            return None
        return resize(
            labels, image.shape[:2], order=0, preserve_range=True, anti_aliasing=False
        ).astype(labels.dtype)

    return DatasetSample(
        sample.id, image.astype(dtype), nearest(sample.labels), nearest(sample.instances)
    )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One competition image in memory, ``(Y, X)`` or ``(Y, X, 3)`` (an alpha channel dropped).

    Parameters
    ----------
    path : path
        PNG, JPEG, TIFF or any format :func:`~napari_segkit.core.io.read_stack` reads.

    Returns
    -------
    ndarray
        ``(Y, X)`` or ``(Y, X, 3)``, the file's dtype.
    """
    image = np.asarray(read_stack(path, lazy=False).data)  # an opaque alpha is dropped there
    if image.ndim == 3 and image.shape[-1] == 4:  # a TIFF's alpha: carries nothing either
        image = image[..., :3]
    return image


def _find_image(images_dir: Path, image_id: str) -> Path:
    """``<dir>/<id>.<ext>`` or the DSB2018 ``<dir>/<id>/images/<id>.png``."""
    for candidate in [
        images_dir / image_id / "images" / f"{image_id}.png",
        *(images_dir / f"{image_id}{s}" for s in SLICE_SUFFIXES),
    ]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no image for id '{image_id}' in '{images_dir}' "
        f"(looked for <id>.png/.tif/... and <id>/images/<id>.png)"
    )


def _columns(header: list[str], id_column, rle_column, class_column):
    lower = [h.lower() for h in header]

    def pick(name, hints, required):
        if name is not None:
            if name not in header:
                raise ValueError(f"CSV has no column {name!r}; columns: {header}")
            return header.index(name)
        for i, h in enumerate(lower):
            if any(hint in h for hint in hints):
                return i
        if required:
            raise ValueError(
                f"cannot tell which CSV column holds {hints[0]}s; columns: "
                f"{header} (name it explicitly)"
            )
        return None

    return (
        pick(id_column, ("id", "image", "name"), True),
        pick(rle_column, ("encoded", "rle", "pixels", "mask"), True),
        pick(class_column, ("class", "category", "label"), False),
    )


def read_rle_csv(
    csv_path: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    id_column: str | None = None,
    rle_column: str | None = None,
    class_column: str | None = None,
    order: str = "F",
    limit: int | None = None,
) -> list[DatasetSample]:
    """Read a Kaggle-style RLE CSV and its images.

    Parameters
    ----------
    csv_path : path
        Header row, then one row per mask: id, run-length string, optional class.
    images_dir : path, optional
        Where ``<id>.png`` (or ``<id>/images/<id>.png``) live; default: the folder
        beside the CSV that holds the first id's image.
    id_column, rle_column, class_column : str, optional
        Column names; guessed from the header when omitted (``ImageId``,
        ``EncodedPixels``, ``ClassId`` ...).
    order : {"F", "C"}
        Pixel numbering of the run-length strings (see :mod:`napari_segkit.core.rle`).
    limit : int, optional
        Read only the first `limit` images (in the order of the file); every row is
        still checked.

    Returns
    -------
    list of DatasetSample
        Without a class column each row is one object: ``instances`` numbers them
        (later rows win where masks overlap) and ``labels`` is 0/1. With a class
        column, ``labels`` holds the row's class id (``instances`` is None).
    """
    csv_path = Path(csv_path)
    rows = read_csv_rows(csv_path)
    if len(rows) < 2:
        raise StackReadError(f"'{csv_path}' has no data rows")
    header, rows = rows[0], rows[1:]
    i_id, i_rle, i_class = _columns(header, id_column, rle_column, class_column)
    by_id: dict[str, list[tuple[int, list[str]]]] = {}
    for line, row in enumerate(rows, 2):
        if not row:
            continue
        _check_row(csv_path, line, row, i_id, i_rle, i_class)
        by_id.setdefault(row[i_id], []).append((line, row))
    images_dir = (
        Path(images_dir)
        if images_dir is not None
        else _guess_images_dir(csv_path, next(iter(by_id)))
    )
    samples = []
    for image_id, group in list(by_id.items())[:limit]:
        image = read_image(_find_image(images_dir, image_id))
        shape = image.shape[:2]
        labels = np.zeros(shape, np.int32)
        for n, (line, row) in enumerate(group, 1):
            try:
                mask = rle_decode(row[i_rle], shape, order=order).astype(bool)
            except RLEError as err:
                raise RLEError(
                    f"'{csv_path}', line {line}, id {image_id} (mask {n}): {err}"
                ) from None
            labels[mask] = int(row[i_class]) if i_class is not None else n  # checked above
        if i_class is not None:
            samples.append(DatasetSample(image_id, image, labels.astype(np.uint16)))
        else:
            samples.append(DatasetSample(image_id, image, (labels > 0).astype(np.uint8), labels))
    return samples


def read_csv_rows(path: str | os.PathLike) -> list[list[str]]:
    """The rows of a CSV file in UTF-8 (a byte-order mark is dropped) or UTF-16 (with BOM).

    Parameters
    ----------
    path : path

    Returns
    -------
    list of list of str

    Raises
    ------
    FileNotFoundError
    StackReadError
        Another encoding, or not CSV text (the path is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: '{path}'")
    raw = path.read_bytes()
    encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise StackReadError(
            f"'{path}' is not UTF-8 text (byte {err.start}): re-save it as UTF-8"
        ) from None
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise StackReadError(f"'{path}' is not a readable CSV file: {err}") from None


#: the largest class id a label image holds (uint16)
MAX_CLASS_ID = 65535


def _check_row(path: Path, line: int, row: list[str], i_id, i_rle, i_class) -> None:
    """Refuse short rows, ids that reach outside the image folder, bad class ids."""
    needed = max(i for i in (i_id, i_rle, i_class) if i is not None)
    if len(row) <= needed:
        raise StackReadError(
            f"'{path}', line {line}: {len(row)} column(s), the header names {needed + 1}"
        )
    image_id = row[i_id]
    if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith(".."):
        raise StackReadError(
            f"'{path}', line {line}: id {image_id!r} is not a file name (ids may not be empty "
            "or hold path separators or '..': images are looked up inside the image folder)"
        )
    if i_class is not None:
        value = row[i_class].strip()
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_CLASS_ID:
            raise StackReadError(
                f"'{path}', line {line}: class {row[i_class]!r} is not a class id from 0 to "
                f"{MAX_CLASS_ID}"
            )


def _guess_images_dir(csv_path: Path, first_id: str) -> Path:
    for folder in sorted(p for p in csv_path.parent.iterdir() if p.is_dir()):
        try:
            _find_image(folder, first_id)
            return folder
        except FileNotFoundError:
            continue
    raise FileNotFoundError(
        f"no folder beside '{csv_path}' holds the image of id '{first_id}'; pass images_dir"
    )


def read_dsb2018(root: str | os.PathLike, *, ids: list[str] | None = None) -> list[DatasetSample]:
    """DSB2018 layout: ``<root>/<id>/images/<id>.png`` + ``<root>/<id>/masks/*.png``.

    Every image needs its ``masks/`` folder (empty: an image without nuclei); an image
    without one raises :class:`StackReadError`.

    Parameters
    ----------
    root : path
        The folder holding one sub-folder per image id.
    ids : list of str, optional
        Read only these ids (default: all, in natural order).

    Returns
    -------
    list of DatasetSample
        ``image`` ``(Y, X[, 3])``, ``labels`` (semantic, uint8 0/1) and ``instances``
        (one id per mask file, uint16) of shape ``(Y, X)``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: '{root}'")
    ids = ids or sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    if not ids:
        raise EmptyFolderError(f"'{root}' holds no <id>/images/<id>.png folders (DSB2018 layout)")
    # A missing masks/ folder is an unannotated image (DSB2018's test folders look like
    # that), not one without nuclei (an empty masks/ folder): scoring, tuning or training
    # on it as all background would be silently wrong.
    unannotated = [i for i in ids if not (root / i / "masks").is_dir()]
    if unannotated:
        raise StackReadError(
            f"{len(unannotated)} of the {len(ids)} images in '{root}' have no masks/ folder "
            f"(e.g. '{root / unannotated[0]}'): a DSB2018 training folder has one per image; "
            "images without annotations are predicted with `segkit submit`, not read as a "
            "dataset"
        )
    samples = []
    for image_id in ids:
        image = read_image(_find_image(root, image_id))
        instances = np.zeros(image.shape[:2], np.int32)
        mask_files = sorted(
            (root / image_id / "masks").glob("*.png"), key=lambda p: natural_key(p.name)
        )
        for n, mask_file in enumerate(mask_files, 1):
            mask = np.asarray(read_stack(mask_file, lazy=False).data)
            if mask.shape[:2] != instances.shape:
                raise StackReadError(
                    f"mask '{mask_file}' is {mask.shape[:2]}, its image {instances.shape}"
                )
            instances[(mask if mask.ndim == 2 else mask[..., 0]) > 0] = n
        samples.append(DatasetSample(image_id, image, (instances > 0).astype(np.uint8), instances))
    return samples


def read_paired_folders(
    images_dir: str | os.PathLike, labels_dir: str | os.PathLike, *, instances: bool = False
) -> list[DatasetSample]:
    """Image / annotation folders matched by file stem: CamVid's ``train/`` + ``trainannot/``
    (class ids) or, with ``instances=True``, StarDist's ``images/`` + ``masks/`` (one id per
    object).

    Parameters
    ----------
    images_dir, labels_dir : path
        Folders of images and of label images with the same file stems.
    instances : bool
        The label images are instance labels (0 background, one id per object): they become
        the samples' ``instances`` and their foreground (0/1) the ``labels``.

    Returns
    -------
    list of DatasetSample
        One per matched pair, in natural order of the stems; ``labels`` ``(Y, X)`` are the
        annotation's class ids (``instances=False``) or its foreground.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"no such folder: '{d}'")

    def files(d):
        return {p.stem: p for p in d.iterdir() if p.name.lower().endswith(SLICE_SUFFIXES)}

    images, labels = files(images_dir), files(labels_dir)
    missing = sorted(set(images) ^ set(labels))
    if missing:
        raise StackReadError(
            f"images and labels do not pair up by name: {missing[:5]} "
            f"{'...' if len(missing) > 5 else ''} have no partner"
        )
    if not images:
        raise EmptyFolderError(f"'{images_dir}' holds no images")
    samples = []
    for stem in sorted(images, key=natural_key):
        image, label = (
            read_image(images[stem]),
            np.asarray(read_stack(labels[stem], lazy=False).data),
        )
        if label.shape != image.shape[:2]:
            raise StackReadError(f"'{labels[stem]}' is {label.shape}, its image {image.shape[:2]}")
        if not instances:
            samples.append(DatasetSample(stem, image, label))
            continue
        if not np.issubdtype(label.dtype, np.integer):
            raise StackReadError(
                f"'{labels[stem]}' holds {label.dtype} values: instance masks must be integer ids"
            )
        objects = label.astype(np.int32)
        samples.append(DatasetSample(stem, image, (objects > 0).astype(np.uint8), objects))
    return samples


def read_stack_pair(images: str | os.PathLike, labels: str | os.PathLike) -> list[DatasetSample]:
    """An image stack and its label stack (ISBI 2012 style), one sample per plane.

    Parameters
    ----------
    images, labels : path
        Stacks ``(Z, Y, X)`` of one shape.

    Returns
    -------
    list of DatasetSample
        One per plane, ``image`` and ``labels`` of shape ``(Y, X)``.
    """
    image_stack, label_stack = read_stack(images, lazy=False), read_stack(labels, lazy=False)
    data, lab = np.asarray(image_stack.data), np.asarray(label_stack.data)
    if data.shape[: lab.ndim] != lab.shape:
        raise StackReadError(f"image stack {data.shape} and label stack {lab.shape} differ")
    if lab.ndim == 2:
        data, lab = data[None], lab[None]
    return [DatasetSample(f"{i:04d}", data[i], lab[i]) for i in range(lab.shape[0])]


def load_dataset(
    path: str | os.PathLike, labels: str | os.PathLike | None = None, *, order: str = "F"
) -> list[DatasetSample]:
    """Any layout above, recognised from `path` (and `labels` for the two-path layouts).

    - ``train.csv`` -> :func:`read_rle_csv` (images found beside it);
    - a folder of ``<id>/images/<id>.png`` -> :func:`read_dsb2018`;
    - a folder holding ``images/`` and ``masks/`` (StarDist's layout: instance masks of the
      same names) -> :func:`read_paired_folders` with ``instances=True``;
    - an image folder + `labels` folder -> :func:`read_paired_folders`;
    - an image stack + `labels` stack -> :func:`read_stack_pair`.

    Parameters
    ----------
    path : path
    labels : path, optional
    order : {"F", "C"}
        RLE pixel order of a CSV.

    Returns
    -------
    list of DatasetSample
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: '{path}'")
    if labels is None:
        if path.suffix.lower() == ".csv":
            return read_rle_csv(path, order=order)
        if path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir():
            return read_paired_folders(path / "images", path / "masks", instances=True)
        if path.is_dir() and any((p / "images").is_dir() for p in path.iterdir()):
            return read_dsb2018(path)
        raise StackReadError(
            f"cannot tell the layout of '{path}': give a Kaggle CSV, a DSB2018 folder, "
            "a folder of images/ + masks/ (instance masks), or images together with labels"
        )
    if path.is_dir() and Path(labels).is_dir() and not is_zarr_store(path):
        return read_paired_folders(path, labels)
    return read_stack_pair(path, labels)
