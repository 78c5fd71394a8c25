"""The plugin as napari and the napari hub see it: manifest, wheel, entry points, imports."""

from __future__ import annotations

import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (whl,) = out.glob("napari_segkit-*.whl")
    return whl


def test_wheel_contains_manifest_samples_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        manifest = zf.read("napari_segkit/napari.yaml").decode()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(entry_points).decode()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = zf.read(meta).decode()
    assert manifest == (ROOT / "napari.yaml").read_text()
    for key in ("nuclei_2d", "nuclei_3d"):
        for suffix in ("", "_instances", "_semantic"):
            assert f"napari_segkit/sample_data/{key}{suffix}.tif" in names
    assert "[napari.manifest]" in entry_points
    assert "napari-segkit = napari_segkit:napari.yaml" in entry_points
    assert "segkit = napari_segkit.cli:main" in entry_points
    assert "Classifier: Framework :: napari" in meta
    assert "Requires-Python: >=3.11" in meta  # as current napari
    # napari convention, and a headless install: no napari, magicgui or Qt binding among
    # the core dependencies; they come with the `napari` extra
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [r.split(":", 1)[1].strip().lower() for r in requires if "extra ==" not in r]
    gui = ("pyqt", "pyside", "napari", "magicgui", "qtpy", "vispy")
    assert not [r for r in core if r.startswith(gui)], core
    napari_extra = [r.lower() for r in requires if 'extra == "napari"' in r]
    assert any(r.split(":", 1)[1].strip().startswith("napari") for r in napari_extra)
    assert any("pyqt6" in r.lower() for r in requires if 'extra == "testing"' in r)


def test_installed_manifest_is_the_repository_one():
    import napari_segkit

    installed = Path(napari_segkit.__file__).parent / "napari.yaml"
    assert installed.read_text() == (ROOT / "napari.yaml").read_text()


def test_npe2_finds_plugin_and_contributions():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover()
    manifest = pm.get_manifest("napari-segkit")
    contrib = manifest.contributions
    assert {r.command for r in contrib.readers} == {"napari-segkit.get_reader"}
    assert {w.command for w in contrib.writers} == {"napari-segkit.write_labels"}
    assert {s.key for s in contrib.sample_data} == {
        "nuclei_2d",
        "nuclei_3d",
        "nuclei_2d_segmented",
    }
    assert {w.display_name for w in contrib.widgets} == {
        "Load stack",
        "Predict",
        "Train",
        "Border weights",
        "Evaluate",
        "Export labels",
        "Export model",
    }
    # every command resolves to a real callable
    for cmd in contrib.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.id


def test_npe2_validate_manifest():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(ROOT / "napari.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_package_and_cli_is_light():
    """Importing the package or the CLI must not load torch, napari or Qt."""
    code = (
        "import sys, napari_segkit, napari_segkit.cli, napari_segkit.core.io; "
        "heavy = [m for m in ('torch', 'napari', 'magicgui', 'qtpy', 'PyQt5') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_core_never_imports_torch_or_napari():
    for path in (ROOT / "src" / "napari_segkit" / "core").glob("*.py"):
        text = path.read_text()
        for heavy in ("import torch", "from torch", "import napari", "from napari ", "qtpy"):
            assert heavy not in text, f"{path.name} imports {heavy}"
