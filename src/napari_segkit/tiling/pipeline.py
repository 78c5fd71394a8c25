"""Overlapped reading, computing and writing of blocks: a bounded three-stage pipeline.

A reader thread loads and normalises the next blocks while the calling thread runs
the model on the current one, and a writer thread encodes and writes finished blocks.
Queues are bounded (``depth`` blocks read ahead, ``depth`` blocks waiting to be
written), so at most ``2 * depth + 1`` blocks are in memory at once, whatever the
size of the volume. Errors of the reader or the writer are raised in the calling
thread; cancel, errors and the end all wait for both threads, so none is left running
and no block is recorded as done unless it was written (the writer records it).

Threads suffice: reading (zarr/tifffile decompression), torch and numpy release the
GIL for their heavy work.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class StageTimes:
    """Seconds spent in each stage (summed over blocks) and the run's wall time.

    ``read`` and ``write`` run on their own threads, so they overlap ``compute``; the
    stage with the largest total bounds the run.
    """

    read: float = 0.0
    compute: float = 0.0
    write: float = 0.0
    wall: float = 0.0
    pixels: int = 0
    blocks: int = 0
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> dict:
        """The times as a dict, with megapixels per second and the bounding stage.

        Returns
        -------
        dict
            ``{"read_s", "compute_s", "write_s", "wall_s", "blocks", "megapixels",
            "mpx_per_s", "bound_by"}``.
        """
        stages = {"read": self.read, "compute": self.compute, "write": self.write}
        return {
            "read_s": round(self.read, 4),
            "compute_s": round(self.compute, 4),
            "write_s": round(self.write, 4),
            "wall_s": round(self.wall, 4),
            "blocks": self.blocks,
            "megapixels": round(self.pixels / 1e6, 3),
            "mpx_per_s": round(self.pixels / 1e6 / max(self.wall, 1e-9), 2),
            "bound_by": max(stages, key=stages.get),
        }


def run_pipeline(
    items, read, compute, write, *, depth: int = 2, readers: int = 2, on_written=None, times=None
):
    """Run ``write(item, compute(read(item)))`` for every item, the three stages overlapped.

    Parameters
    ----------
    items : sequence
        Work items (blocks), processed and written in order.
    read : callable(item) -> data
        Runs on the reader thread.
    compute : callable(data) -> result
        Runs on the calling thread (the model's thread: torch keeps one thread team).
    write : callable(item, result) -> None
        Runs on the writer thread.
    depth : int
        Blocks read ahead, and blocks queued for writing.
    readers : int
        Reader threads (decompression is the usual bottleneck of a fast model; blocks
        still come out in order).
    on_written : callable(item), optional
        Called on the calling thread after each item's write completed, in order.
    times : StageTimes, optional
        Accumulates the time of each stage.

    Returns
    -------
    None
    """
    times = times if times is not None else StageTimes()
    items = list(items)

    lock = threading.Lock()  # several readers add to one total

    def timed_read(item):
        started = time.perf_counter()
        data = read(item)
        with lock:
            times.read += time.perf_counter() - started
        return data

    def timed_write(item, result):
        started = time.perf_counter()
        write(item, result)
        times.write += time.perf_counter() - started

    reader = ThreadPoolExecutor(readers, thread_name_prefix="segkit-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="segkit-write")
    reads, writes = deque(), deque()
    try:
        for item in items[:depth]:
            reads.append(reader.submit(timed_read, item))
        for n, item in enumerate(items):
            data = reads.popleft().result()  # a reader error is raised here
            if n + depth < len(items):
                reads.append(reader.submit(timed_read, items[n + depth]))
            started = time.perf_counter()
            result = compute(data)
            times.compute += time.perf_counter() - started
            writes.append((item, writer.submit(timed_write, item, result)))
            while writes and (len(writes) > depth or writes[0][1].done()):
                done_item, future = writes.popleft()
                future.result()  # a writer error is raised here
                if on_written is not None:
                    on_written(done_item)
        while writes:
            done_item, future = writes.popleft()
            future.result()
            if on_written is not None:
                on_written(done_item)
    finally:
        for future in reads:
            future.cancel()
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)  # blocks being written finish (and are recorded)
        times.wall += time.perf_counter() - times.started


__all__ = ["StageTimes", "run_pipeline"]
