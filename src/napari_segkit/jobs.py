"""Long work, front-end neutral: cancellation and progress (torch-free, napari-free).

Prediction and training are plain library calls that take two optional hooks:

- ``cancel``: ``None``, a ``threading.Event`` or a callable returning True when the
  work should stop. The library checks it between tile batches / optimisation steps
  with :func:`raise_if_cancelled` and stops by raising a subclass of
  :class:`Cancelled` (what was finished stays saved: a zarr output stays resumable,
  the best model file stays written).
- ``progress``: a callable. Prediction calls ``progress(done, total)`` (blocks);
  training calls ``progress(report)`` with a ``TrainReport``. The CLI wraps these in a
  tqdm bar, the widgets in a Qt progress bar, tests just record them.

Front ends tell "the user stopped it" from "it failed" with
``isinstance(err, Cancelled)``.
"""

from __future__ import annotations

from typing import Protocol


class Cancelled(Exception):
    """The `cancel` hook asked a long job to stop (not a failure)."""


class PredictionCancelled(Cancelled):
    """Prediction stopped on request; a zarr output is left resumable, never marked complete."""


class TrainingCancelled(Cancelled):
    """Training stopped on request; the best model saved so far stays in place."""


class ProgressCallback(Protocol):
    """``progress(done, total)``: `done` of `total` units (blocks, images) are finished."""

    def __call__(self, done: int, total: int) -> None: ...


def is_cancelled(cancel) -> bool:
    """True when `cancel` asks to stop.

    Parameters
    ----------
    cancel : None, threading.Event or callable
        An Event is asked ``is_set()``; a callable is called with no argument.

    Returns
    -------
    bool

    Examples
    --------
    >>> import threading
    >>> event = threading.Event()
    >>> is_cancelled(None), is_cancelled(event), is_cancelled(lambda: True)
    (False, False, True)
    >>> event.set(); is_cancelled(event)
    True
    """
    if cancel is None:
        return False
    return cancel.is_set() if hasattr(cancel, "is_set") else bool(cancel())


def raise_if_cancelled(cancel, error: type[Cancelled], message: str) -> None:
    """Raise ``error(message)`` when `cancel` asks to stop (see :func:`is_cancelled`).

    Parameters
    ----------
    cancel : None, threading.Event or callable
    error : subclass of Cancelled
    message : str
        What stopped and what was kept.

    Returns
    -------
    None
    """
    if is_cancelled(cancel):
        raise error(message)


def report(progress, done: int, total: int) -> None:
    """Call ``progress(done, total)`` when a callback was given.

    Parameters
    ----------
    progress : ProgressCallback or None
    done, total : int

    Returns
    -------
    None
    """
    if progress is not None:
        progress(done, total)


__all__ = [
    "Cancelled",
    "PredictionCancelled",
    "ProgressCallback",
    "TrainingCancelled",
    "is_cancelled",
    "raise_if_cancelled",
    "report",
]
