"""Write DSB2018's Kaggle folders as one image and one instance mask per sample.

    python scripts/pack_dsb2018.py --data ../shared/data/dsb2018-train --out .device/dsb2018

The Kaggle layout stores one PNG per nucleus (24,439 files, 157 MB for ``dsb2018-train``);
the packed copy stores ``images/<id>.png`` (gray images, saved by Kaggle as RGBA with
equal channels, as one channel) and ``masks/<id>.png`` (16-bit instance ids): about 37 MB
that read in seconds. It is StarDist's ``images/`` + ``masks/`` layout, so ``load_dataset``,
``segkit train --dataset``, ``scripts/train_default_model.py --data`` and
``scripts/evaluate_default_model.py --data`` read it as they read the Kaggle folders.
What it is for: a lent GPU machine receives at most 64 MiB with the repository
(docs/default-model.md, "Training it on a GPU machine without network"); the Kaggle
folders do not fit, the packed copy does.

Every packed sample is read back and compared with the original before the folder is
renamed into place, so a packed folder that exists is complete and exact: the same ids,
instance ids and pixels (a one-channel image stands for three equal channels, which is how
every model reads a gray image).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np


def gray_if_equal_channels(image: np.ndarray) -> np.ndarray:
    """``(Y, X)`` when the three channels of ``(Y, X, 3)`` are equal, else `image`."""
    if image.ndim == 3 and (image == image[..., :1]).all():
        return np.ascontiguousarray(image[..., 0])
    return image


def same_sample(packed, original) -> bool:
    """True when a packed sample holds the original's id, pixels and instances."""
    image = packed.image
    if image.ndim == 2 and original.image.ndim == 3:
        image = np.repeat(image[..., None], original.image.shape[-1], axis=-1)
    return (
        packed.id == original.id
        and image.dtype == original.image.dtype
        and np.array_equal(image, original.image)
        and np.array_equal(packed.instances, original.instances)
    )


def pack(data: Path, out: Path, *, progress=print) -> int:
    """Pack the DSB2018 folder `data` (``<id>/images``, ``<id>/masks``, or the download
    holding them in ``stage1_train/``) into `out`.

    Returns the number of samples. Writes into ``<out>.partial`` and renames it to `out`
    only once every sample has been read back and found equal.
    """
    import imageio.v3 as iio

    from napari_segkit.kaggle import read_dsb2018
    from napari_segkit.kaggle.datasets import read_paired_folders

    if out.exists():
        raise FileExistsError(f"'{out}' exists: remove it or choose another --out")
    source = data / "stage1_train" if (data / "stage1_train").is_dir() else data
    samples = read_dsb2018(source)
    most = max(int(s.instances.max()) for s in samples)
    if most > np.iinfo(np.uint16).max:
        raise ValueError(f"an image has {most} nuclei: more than a 16-bit mask can number")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "images").mkdir(parents=True)
    (partial / "masks").mkdir()
    for n, sample in enumerate(samples, 1):
        image = gray_if_equal_channels(sample.image)
        iio.imwrite(partial / "images" / f"{sample.id}.png", image, optimize=True)
        masks = sample.instances.astype(np.uint16)
        iio.imwrite(partial / "masks" / f"{sample.id}.png", masks, optimize=True)
        if n % 100 == 0 or n == len(samples):
            progress(f"packed {n} / {len(samples)}")
    packed = read_paired_folders(partial / "images", partial / "masks", instances=True)
    by_id = {s.id: s for s in samples}
    wrong = [s.id for s in packed if s.id not in by_id or not same_sample(s, by_id[s.id])]
    if wrong or len(packed) != len(samples):
        shutil.rmtree(partial)
        raise RuntimeError(f"packed samples differ from the originals: {wrong[:5]}")
    provenance = source.parent / "PROVENANCE.txt"
    note = f"Packed by scripts/pack_dsb2018.py from '{source}': {len(samples)} samples.\n"
    if provenance.is_file():
        note += "\n" + provenance.read_text()
    (partial / "PROVENANCE.txt").write_text(note)
    partial.rename(out)
    return len(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018-train"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    count = pack(args.data, args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out}: {count} samples, {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
