"""Predicting through the napari widget vs calling the library function directly.

    xvfb-run -a python benchmarks/bench_widget_vs_library.py --size 2048 --repeat 3

Other plugins found torch much slower inside napari's thread workers (micro-sam
#740); this measures ours. The same model (the bundled default), the same image
(synthetic nuclei, SIZE x SIZE), the same settings: (a) ``predict()`` called on
the main thread of a child process (a script's view; a separate process, because
torch keeps one OpenMP thread team per calling thread and a main-thread team left
over from (a) would compete with the widget's worker), (b) the Predict widget in a
napari viewer (worker thread, progress signals, layer added at the end), timed from
the click to the result layer appearing. Each side runs once to warm up, then
`repeat` times; prints the best of each and the ratio widget / library (goal: about
1).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import napari
from qtpy.QtCore import QEventLoop
from qtpy.QtWidgets import QApplication

from napari_segkit.core.synthetic import make_nuclei

LIBRARY = """
import sys, time
from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.samples import DEFAULT_MODEL
from napari_segkit.models import load_model
from napari_segkit.tiling import predict
size, repeat = int(sys.argv[1]), int(sys.argv[2])
image = make_nuclei((size, size), seed=0).image
times = []
for i in range(repeat + 1):
    start = time.perf_counter()
    predict(load_model(DEFAULT_MODEL), image)
    times.append(time.perf_counter() - start)
print(min(times[1:]))
"""


def library_time(size: int, repeat: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", LIBRARY, str(size), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def widget_time(size: int, repeat: int) -> float:
    image = make_nuclei((size, size), seed=0).image
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(image, name="nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segkit", "Predict")
    widget.image.value = layer
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        loop = QEventLoop()  # an idle event loop, as in napari (no polling)
        widget.run()
        widget.jobs.worker.finished.connect(loop.quit)
        loop.exec_()
        QApplication.processEvents()  # the result layer is added
        times.append(time.perf_counter() - start)
        viewer.layers.remove("nuclei labels")
    viewer.close()
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.size} x {args.size}, bundled model, best of {args.repeat} after a warm-up run")
    lib = library_time(args.size, args.repeat)
    wid = widget_time(args.size, args.repeat)
    print(
        f"library predict(): {lib:.2f} s   widget: {wid:.2f} s   ratio widget/library {wid / lib:.3f}"
    )


if __name__ == "__main__":
    main()
