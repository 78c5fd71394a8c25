"""Write the synthetic samples shipped in sample_data/ (deterministic: same seed, same pixels).

python scripts/make_sample_data.py
"""

from pathlib import Path

import tifffile

from napari_segkit.core.synthetic import sample_2d, sample_3d

OUT = Path(__file__).resolve().parents[1] / "sample_data"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for key, sample in (("nuclei_2d", sample_2d()), ("nuclei_3d", sample_3d())):
        for suffix, array in (
            ("", sample.image),
            ("_semantic", sample.semantic),
            ("_instances", sample.instances),
        ):
            path = OUT / f"{key}{suffix}.tif"
            tifffile.imwrite(path, array, compression="zlib")
            print(f"wrote {path} {array.shape} {array.dtype}")


if __name__ == "__main__":
    main()
