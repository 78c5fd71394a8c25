"""Predicting through the napari widget vs calling the library function directly.

    xvfb-run -a python benchmarks/bench_widget_vs_library.py --size 2048 --repeat 3

Other plugins found torch much slower inside napari's thread workers (micro-sam
#740); this measures ours. The same model (the bundled default), the same image
(synthetic nuclei, SIZE x SIZE), the same settings: (a) ``predict()`` called on
the main thread, (b) the Predict widget (worker thread, progress signals, layer
added at the end), timed from the click to the result layer appearing. Prints the
best of `repeat` runs of each, alternated, and the ratio widget / library (goal:
about 1).
"""

from __future__ import annotations

import argparse
import time

import napari
import torch
from qtpy.QtWidgets import QApplication

from napari_segkit.core.synthetic import make_nuclei
from napari_segkit.demo import DEFAULT_MODEL
from napari_segkit.models import load_model
from napari_segkit.tiling import predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    image = make_nuclei((args.size, args.size), seed=0).image
    model_file = load_model(DEFAULT_MODEL)
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(image, name="nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segkit", "Predict")
    widget.image.value = layer
    print(f"{args.size} x {args.size}, torch threads {torch.get_num_threads()}")
    lib_times, widget_times = [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        predict(model_file, image)
        lib_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        widget.run()
        while widget.jobs.running:
            QApplication.processEvents()
            time.sleep(0.005)
        widget_times.append(time.perf_counter() - start)
        viewer.layers.remove("nuclei labels")
    lib, wid = min(lib_times), min(widget_times)
    print(f"library predict(): {lib:.2f} s   widget: {wid:.2f} s   ratio widget/library {wid / lib:.3f}")


if __name__ == "__main__":
    main()
