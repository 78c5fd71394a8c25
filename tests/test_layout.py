"""The package layout: import directions, the public API, start-up cost, docstrings.

These tests read the source (``ast``) or run a fresh interpreter, so they fail as
soon as a change makes a lower layer import a higher one or makes ``segkit --help``
load numpy -- things no behavioural test would notice.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import napari_segkit

PACKAGE = Path(napari_segkit.__file__).parent
GUI = ("napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy")


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(absolute module name, at module level?)`` for every import in a source file."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if path.name == "__init__.py":
        module = package
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module
            found.append((name, id(node) in top_level))
    return found


def _sources(folder: str = "") -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _is(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_core_imports_neither_torch_nor_napari_nor_higher_layers():
    for path in _sources("core"):
        for name, _ in _imports(path):
            assert not _is(name, "torch", *GUI), f"{path.name} imports {name}"
            if _is(name, "napari_segkit"):
                assert _is(name, "napari_segkit.core"), f"core/{path.name} imports {name}"


def test_models_and_losses_never_import_tiling_training_kaggle_or_napari():
    for path in _sources("models") + _sources("losses"):
        for name, _ in _imports(path):
            for higher in ("tiling", "training", "kaggle", "napari", "cli", "demo"):
                assert not _is(name, f"napari_segkit.{higher}"), f"{path} imports {name}"


def test_training_reaches_tiling_only_inside_validate():
    for path in _sources("training"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("tiling"):
                    assert node.name == "validate", f"{path.name}:{node.name} imports tiling"
        module_level = [n for n, top in _imports(path) if top]
        assert not any(_is(n, "napari_segkit.tiling") for n in module_level), path


def test_nothing_outside_the_napari_folder_imports_gui_toolkits():
    for path in _sources():
        if _layer(path) == "napari":
            continue
        for name, _ in _imports(path):
            assert not _is(name, *GUI), f"{path.relative_to(PACKAGE)} imports {name}"
    # and inside it, only the modules napari itself loads do
    for name in ("layers.py", "__init__.py"):
        for imported, _ in _imports(PACKAGE / "napari" / name):
            assert not _is(imported, *GUI), f"napari/{name} imports {imported}"


def test_torch_free_modules_stay_torch_free():
    """jobs, config and the loss table are read by the CLI and widgets before torch loads."""
    for rel in (
        "jobs.py",
        "config.py",
        "samples.py",
        "losses/table.py",
        "losses/__init__.py",
        "models/info.py",
        "models/__init__.py",
    ):
        for name, top in _imports(PACKAGE / rel):
            if top:
                assert not _is(name, "torch", "numpy", "scipy", *GUI), f"{rel} imports {name}"


def test_public_api_is_written_out_and_resolves():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    literal = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"
    )
    assert isinstance(literal, ast.List)  # readable by static tools, not computed
    names = [ast.literal_eval(element) for element in literal.elts]
    assert sorted(names) == sorted([*napari_segkit._PUBLIC, "__version__"])
    assert "train_iter" in names
    for name in names:
        assert getattr(napari_segkit, name) is not None


def test_segkit_help_loads_neither_numpy_nor_scipy_nor_torch():
    code = (
        "import sys\n"
        "from napari_segkit.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "for sub in ('predict', 'train', 'submit', 'tune'):\n"
        "    try:\n"
        "        main([sub, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('numpy', 'scipy', 'torch', 'napari', 'dask') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout, result.stdout[-500:]
    assert "--cluster" in result.stdout and "--resume" in result.stdout


def _public_functions():
    skip = ("napari_segkit.cli", "napari_segkit.napari._")
    for info in pkgutil.walk_packages([str(PACKAGE)], "napari_segkit."):
        if info.name.startswith(skip):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and obj.__module__ == info.name:
                yield f"{info.name}.{name}", obj


def test_every_public_function_has_numpydoc_parameters_and_returns():
    missing = []
    for qualname, func in _public_functions():
        doc = inspect.getdoc(func) or ""
        if inspect.signature(func).parameters and "Parameters\n----------" not in doc:
            missing.append(f"{qualname}: Parameters")
        if "Returns\n-------" not in doc and "Yields\n------" not in doc:
            missing.append(f"{qualname}: Returns")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", ["core", "tiling", "training", "kaggle", "models", "losses"])
def test_subpackages_declare_all(name):
    module = importlib.import_module(f"napari_segkit.{name}")
    for public in getattr(module, "__all__", []):
        assert hasattr(module, public), f"napari_segkit.{name}.__all__ names {public}"
