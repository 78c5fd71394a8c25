"""One recipe for writing a file or folder so that it is never seen half-written.

Everything napari-segkit writes in one go (stacks, model files, CSVs, training
state) is written under a hidden temporary name beside the target and renamed at
the end; an existing target is kept aside until the rename succeeded, so a crash
at any point leaves either the old output or the new one, never a mix.
(Outputs written block by block over minutes -- the zarr results of ``predict`` --
use completion records instead: see ``napari_segkit.tiling.sink``.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` when the block succeeds.

    Parameters
    ----------
    path : path
        The final file or folder. Its parent folder must exist.

    Yields
    ------
    Path
        ``.<name>.<random>.partial`` in the same folder (same file system, so the final
        rename is atomic). Write the file or folder there.

    Notes
    -----
    If the block raises, the temporary path is removed and `path` is untouched. If
    `path` exists it is replaced; the old file is moved aside first and put back if
    the rename fails.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['a.txt'])
    """
    final = Path(path)
    tmp = _temporary_sibling(final, "partial")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for '{final}'")
        _replace(tmp, final)
    finally:
        _remove(tmp)


def _temporary_sibling(path: Path, tag: str) -> Path:
    """A hidden, unique name beside `path`: ``.<name>.<8 hex digits>.<tag>``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.{tag}")


def _replace(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final`; an existing `final` is kept aside until the move succeeded."""
    if not final.exists():
        os.replace(tmp, final)
        return
    backup = _temporary_sibling(final, "old")
    os.replace(final, backup)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(backup, final)  # put the user's file back
        raise
    _remove(backup)


def _remove(path: Path) -> None:
    """Delete a file or a folder tree if it exists (no error when it does not)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


__all__ = ["atomic_path"]
