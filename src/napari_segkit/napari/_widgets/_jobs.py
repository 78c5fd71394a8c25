"""Run one long library call off the UI thread: Run / Cancel buttons, progress, notifications.

Every long widget (predict, train) is a form plus a :class:`JobPanel`. The panel
runs ``work(progress, cancel)`` -- a plain library call -- in napari's thread
worker. `progress` may be called from the worker thread with any payload; the
payload reaches the widget's handler on the UI thread through a queued Qt signal,
at most every 0.1 s (many signals per second would fight the worker for the GIL,
one of the slowdowns other plugins hit). `cancel` is a ``threading.Event`` that
the library checks between tiles / steps. Errors become napari notifications,
never exceptions in the event loop.
"""

from __future__ import annotations

import threading
import time

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from ...jobs import Cancelled


class _Relay(QObject):
    """Carries progress payloads from the worker thread to the UI thread."""

    payload = Signal(object)


class JobPanel(Container):
    """Run / Cancel buttons, a progress bar and a status line for one background job."""

    #: also show a bar in napari's activity dock. Off by default: while that dock shows a
    #: running task its repaints slowed predictions by 10-55 % on 2 cores (indeterminate:
    #: ~45 %), measured with benchmarks/bench_widget_vs_library.py; the widget's own bar
    #: costs nothing measurable.
    show_activity = False

    def __init__(self, run_text: str):
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.bar = ProgressBar(min=0, max=1, value=0, visible=False)
        self.status = Label(value="")
        super().__init__(
            widgets=[self.run_button, self.cancel_button, self.bar, self.status], labels=False
        )
        self.cancel_button.changed.connect(self.cancel)
        self.worker = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._last_emit = 0.0
        self._activity = None  # napari.utils.progress in the activity dock, while running
        self._title = ""
        self._started = time.monotonic()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, work, *, title: str, on_progress=None, on_done=None) -> None:
        """Run ``work(progress, cancel)`` in a thread worker.

        on_progress(payload) and on_done(result) run on the UI thread.
        """
        if self.running:
            show_info(f"{title} is already running")
            return
        self._cancel = threading.Event()
        self._relay = _Relay()
        if on_progress is not None:
            self._relay.payload.connect(on_progress)

        def progress(payload, *, force: bool = False):
            now = time.monotonic()
            if force or now - self._last_emit >= 0.1:
                self._last_emit = now
                self._relay.payload.emit(payload)

        # _ignore_errors: our `errored` handler turns them into notifications (napari's
        # default re-raises them in the event loop). No `_progress=`: see show_activity.
        self.worker = create_worker(
            work, progress, self._cancel, _start_thread=False, _ignore_errors=True
        )
        self._title = title
        self.worker.returned.connect(lambda result: self._finish(title, on_done, result))
        self.worker.errored.connect(lambda err: self._failed(title, err))
        self.worker.finished.connect(self._reset)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.bar.max, self.bar.value = 1, 0  # never the last job's 100 %
        self._started = time.monotonic()
        self.bar.visible = True
        self.status.value = f"{title}: running"  # replaces the last job's line
        self.worker.start()

    def cancel(self, *_) -> None:
        """Ask the running job to stop at its next tile / step."""
        if self.running:
            self._cancel.set()
            self.status.value = "cancelling..."

    def set_progress(self, done: int, total: int, unit: str | None = None) -> None:
        """Update the widget's bar (and the one in napari's activity dock); with a `unit`
        ("tiles") also the status line: done / total, rate and time left."""
        from napari.utils import progress as napari_progress

        self.bar.max = max(int(total), 1)
        self.bar.value = min(int(done), self.bar.max)
        if unit and done > 0:
            elapsed = max(time.monotonic() - self._started, 1e-6)
            rate = done / elapsed
            left = (total - done) / rate if rate > 0 else float("inf")
            self.status.value = (
                f"{self._title}: {done}/{total} {unit}, {rate:.1f} {unit}/s, {left:.0f} s left"
            )
        if self._activity is None and self.show_activity:
            self._activity = napari_progress(total=self.bar.max, desc=self._title)
        if self._activity is not None:
            self._activity.total = self.bar.max
            self._activity.n = self.bar.value
            self._activity.refresh()

    def _finish(self, title, on_done, result) -> None:
        self.status.value = f"{title}: done"
        if on_done is not None:
            try:
                on_done(result)
            except Exception as err:  # noqa: BLE001 -- shown to the user, not raised into Qt
                self._failed(title, err)

    def _failed(self, title, err) -> None:
        if isinstance(err, Cancelled):  # the user pressed Cancel: not a failure
            self.status.value = f"{title}: cancelled"
            show_info(f"{title}: {err}")
        else:
            self.status.value = f"{title}: failed"
            show_error(f"{title} failed: {err}")

    def _reset(self, *_) -> None:
        if self._activity is not None:
            self._activity.close()
            self._activity = None
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.bar.visible = False
