"""Prepare what a GPU machine without network needs to train the default model.

    python scripts/gpu_offline/prepare.py --data ../shared/data/dsb2018-train

writes, into the git-ignored ``.device/`` of the repository:

- ``.device/dsb2018/``: the DSB2018 training data packed by ``scripts/pack_dsb2018.py``
  (37 MiB instead of the download's 157 MB of one-PNG-per-nucleus files);
- ``.device/wheels/``: the wheels of the packages the training imports that such a
  machine's image lacks, at this environment's versions (the ones the tests ran with),
  built for that machine's Python (``--python-version``, default 3.12).

and checks that the repository's tracked files plus ``.device/`` stay under the 64 MiB a
lent machine receives. Then ``scripts/gpu_offline/train_default.sh`` runs there
(docs/default-model.md, "Training it on a GPU machine without network", has the call).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: what the training script, the tuning and the evaluation import that the lent machines'
#: image (PyTorch, scikit-image, SciPy, tifffile, imageio, safetensors, timm, ...) does not
#: hold: found by running scripts/train_default_model.py and scripts/evaluate_default_model.py
#: in a virtual environment limited to that image's package list, adding wheels until both ran
WHEELS = (
    "zarr",
    "numcodecs",
    "donfig",
    "google-crc32c",
    "dask",
    "partd",
    "locket",
    "segmentation-models-pytorch",
)

#: what a lent machine receives with one call: the repository's files and the carried paths
LIMIT_MIB = 64

#: manylinux tags pip may pick for the machine (pip matches each exactly)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


def fetch_wheels(folder: Path, python_version: str) -> list[Path]:
    """Download :data:`WHEELS` at this environment's versions into `folder`, binary only
    (the wheels already there are removed first: two versions of one package stop the
    machine's install)."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.whl"):
        stale.unlink()
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--only-binary=:all:", "--python-version", python_version]
    command += ["--implementation", "cp", "--dest", str(folder)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command + pins, check=True)
    return sorted(folder.glob("*.whl"))


def travelling_bytes() -> int:
    """Bytes of the repository's tracked files and of ``.device/`` (what a call sends)."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    files = [ROOT / name.decode() for name in tracked if name]
    files += [p for p in (ROOT / ".device").rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files if p.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/dsb2018-train")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    args = parser.parse_args(argv)

    packed = ROOT / ".device" / "dsb2018"
    if packed.is_dir():
        print(f"{packed} exists: kept")
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        from pack_dsb2018 import pack

        print(f"packed {pack(args.data, packed)} samples into {packed}")
    wheels = fetch_wheels(ROOT / ".device" / "wheels", args.python_version)
    print(f"{len(wheels)} wheels in .device/wheels: " + ", ".join(w.name for w in wheels))
    size = travelling_bytes() / 2**20
    print(f"a call sends {size:.1f} MiB (tracked files + .device/; at most {LIMIT_MIB})")
    if size > LIMIT_MIB:
        print("too much for one call: the limit is the lent machine's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
