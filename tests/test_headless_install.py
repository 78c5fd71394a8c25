"""The library and the CLI work without napari, magicgui or Qt (the core install).

A fresh interpreter with those packages made unimportable runs ``segkit predict`` and
``segkit train`` end to end, and never tries to import them; importing a widget there
gives one message naming the extra to install.
"""

from __future__ import annotations

import subprocess
import sys

from napari_segkit.core.io import write_labels, write_stack
from napari_segkit.core.synthetic import make_nuclei

BLOCK = (
    "import sys\n"
    "for name in ('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', "
    "'vispy', 'superqt'):\n"
    "    sys.modules[name] = None  # `import name` now raises ImportError\n"
)


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_cli_train_and_predict_without_napari(tmp_path):
    sample = make_nuclei((64, 64), seed=2)
    write_stack(tmp_path / "image.tif", sample.image)
    write_labels(tmp_path / "labels.tif", sample.semantic)
    code = (
        "from napari_segkit.cli import main\n"
        "assert main(['train', '--images', 'image.tif', '--labels', 'labels.tif', '--out', "
        "'m.safetensors', '--epochs', '1', '--steps-per-epoch', '2', '--patch-size', '32', "
        "'--val-fraction', '0', '--arch-option', 'width=4', '--arch-option', 'depth=2', "
        "'-q']) == 0\n"
        "assert main(['predict', 'm.safetensors', 'image.tif', 'out.zarr', '-q']) == 0\n"
        "touched = [m for m in ('napari', 'magicgui', 'qtpy', 'vispy') if sys.modules.get(m)]\n"
        "print('GUI MODULES', touched)\n"
    )
    run = _run(code, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "GUI MODULES []" in run.stdout
    assert (tmp_path / "out.zarr").is_dir()


def test_importing_a_widget_without_napari_names_the_extra(tmp_path):
    run = _run("import napari_segkit.napari._widgets.predict\n", tmp_path)
    assert run.returncode != 0
    assert "pip install 'napari-segkit[napari]'" in run.stderr.splitlines()[-1]
