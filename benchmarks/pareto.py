"""The accuracy-versus-speed Pareto front and its plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: higher-or-equal on both axes and higher on one."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 >= x and y2 >= y) and (x2 > x or y2 > y) for j, (x2, y2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot_tradeoff(labels: Sequence[str], fps: Sequence[float], acc: Sequence[float], path: str | Path,
                  title: str, xlabel: str = "faces per second (classifier, batch 1)") -> Path:
    """Accuracy against speed, one labelled point per artifact, the Pareto front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    front = pareto_front(list(zip(fps, acc)))
    ax.plot([fps[i] for i in front], [100 * acc[i] for i in front], "--o", color="tab:orange", markersize=11,
            markerfacecolor="none", label="Pareto front", zorder=2)
    ax.scatter(fps, [100 * a for a in acc], s=40, color="tab:blue", zorder=3)
    for k, (label, x, y) in enumerate(zip(labels, fps, acc)):  # staggered so equal-accuracy labels do not overlap
        ax.annotate(label, (x, 100 * y), textcoords="offset points", xytext=(6, 6 + 12 * (k % 4)), fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
    ax.set_xscale("log")
    lo, hi = min(fps), max(fps)
    ax.set_xlim(lo / 1.5, hi * 4)
    a_lo, a_hi = 100 * min(acc), 100 * max(acc)
    ax.set_ylim(a_lo - max(2.0, 0.2 * (a_hi - a_lo)), a_hi + max(4.0, 0.4 * (a_hi - a_lo)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("val accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
