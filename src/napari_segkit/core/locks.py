"""A lock file beside an output, so two runs never write into one output at once.

``<output>.lock`` is created atomically (``O_CREAT | O_EXCL``) and holds the owner's
PID, host and start time. A second run finds it and stops with an error naming that
process. A lock left by a process that died (same host, PID gone) is stale: it is
taken over. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path


class OutputLockedError(OSError):
    """Another process is writing the same output."""


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<path>.lock`` while the block runs.

    Parameters
    ----------
    path : path
        The output (file or folder) about to be written. Its folder must exist.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    OutputLockedError
        A live process holds the lock (the message names its PID, host and start).

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "result.zarr"
    >>> with output_lock(out) as lock:
    ...     lock.exists()
    True
    >>> lock.exists()
    False
    """
    lock = Path(f"{os.fspath(path)}.lock")
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    for _ in range(2):  # second try after removing a stale lock
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(lock)
            if _is_stale(holder):
                lock.unlink(missing_ok=True)
                continue
            raise OutputLockedError(_held_message(path, lock, holder)) from None
        with os.fdopen(fd, "w") as f:
            json.dump(owner, f)
        break
    else:
        raise OutputLockedError(_held_message(path, lock, _read_lock(lock)))
    try:
        yield lock
    finally:
        if _read_lock(lock).get("pid") == owner["pid"]:
            lock.unlink(missing_ok=True)


def _read_lock(lock: Path) -> dict:
    try:
        holder = json.loads(lock.read_text())
        return holder if isinstance(holder, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict) -> bool:
    """A lock of this host whose process is gone (or an unreadable lock file)."""
    if not holder:
        return True  # empty or torn: its writer died between create and write
    if holder.get("host") != socket.gethostname():
        return False  # cannot tell: keep it
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, TypeError, ValueError):
        return False
    return False


def _held_message(path, lock: Path, holder: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (
        f"'{path}' is in use by PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
        f"(since {since}); wait for it to finish. If that process is gone (another machine), "
        f"delete '{lock}'."
    )


__all__ = ["OutputLockedError", "output_lock"]
