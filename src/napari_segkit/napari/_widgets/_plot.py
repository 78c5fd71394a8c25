"""A small live line plot for the training widget.

Written with QPainter because napari ships no plotting library and a dependency
(matplotlib, pyqtgraph) for a few polylines would cost more than these lines.
"""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFontMetrics, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


class CurvePlot(QWidget):
    """Named series of (x, y) points, drawn on one shared axis box.

    ``plot.add("train loss", step, value)``; ``plot.series`` holds the points (tests
    read it); ``plot.clear()`` starts over.
    """

    COLORS = ("#4c9be8", "#f58231", "#3cb44b", "#e6194b", "#911eb4")

    def __init__(self, parent=None, *, x_label: str = "step"):
        super().__init__(parent)
        self.series: dict[str, list[tuple[float, float]]] = {}
        self.x_label = x_label
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def add(self, name: str, x: float, y: float) -> None:
        self.series.setdefault(name, []).append((float(x), float(y)))
        self.update()

    def clear(self) -> None:
        self.series.clear()
        self.update()

    def legend_layout(self, width: int) -> list[tuple[str, QRectF]]:
        """Where each series' name goes: left to right, wrapping onto more rows so that
        every name fits inside `width` pixels (a narrow dock never clips the legend)."""
        metrics = QFontMetrics(self.font())
        height = metrics.height()
        x, row, out = 36.0, 0, []
        for name in self.series:
            w = metrics.horizontalAdvance(name) + 14  # a colour mark and a gap
            if x > 36 and x + w > width - 4:
                x, row = 36.0, row + 1
            out.append((name, QRectF(x, row * height, w, height)))
            x += w
        return out

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        legend = self.legend_layout(self.width())
        rows = 1 + max((int(r.top() // max(r.height(), 1)) for _, r in legend), default=0)
        legend_height = rows * QFontMetrics(self.font()).height()
        box = QRectF(
            36, 8, max(self.width() - 44, 10), max(self.height() - 28 - legend_height, 10)
        )
        painter.setPen(QPen(QColor("#888888")))
        painter.drawRect(box)
        points = [p for pts in self.series.values() for p in pts]
        if not points:
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "training curves appear here")
            return
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y1 = max(1.0, max(p[1] for p in points))  # Dice lives in [0, 1]; losses may exceed it
        sx = box.width() / (x1 - x0 or 1.0)
        sy = box.height() / y1

        def at(x, y):
            return QPointF(box.left() + (x - x0) * sx, box.bottom() - max(y, 0.0) * sy)

        painter.drawText(QPointF(4, box.top() + 10), f"{y1:.2g}")
        painter.drawText(QPointF(4, box.bottom()), "0")
        painter.drawText(QPointF(box.left(), box.bottom() + 16), f"{self.x_label} {x0:.0f}")
        painter.drawText(QPointF(box.right() - 60, box.bottom() + 16), f"{x1:.0f}")
        for i, pts in enumerate(self.series.values()):
            color = QColor(self.COLORS[i % len(self.COLORS)])
            painter.setPen(QPen(color, 1.6))
            painter.drawPolyline(QPolygonF([at(x, y) for x, y in pts]))
            if len(pts) == 1:
                painter.drawEllipse(at(*pts[0]), 2.5, 2.5)
        top = box.bottom() + 20
        for i, (name, rect) in enumerate(legend):
            color = QColor(self.COLORS[i % len(self.COLORS)])
            y = top + rect.top() + rect.height() * 0.75
            painter.setPen(QPen(color, 3))
            painter.drawLine(QPointF(rect.left(), y - 4), QPointF(rect.left() + 8, y - 4))
            painter.setPen(QPen(QColor("#cccccc")))
            painter.drawText(QPointF(rect.left() + 11, y), name)
        painter.end()
