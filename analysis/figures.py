"""The paper's figures, drawn headless with matplotlib (Agg).

* early_stopping_figure: early-stopping iteration, or test accuracy at early
  stopping, against the percent of weights remaining (log scale), one line
  per experiment, error bars from the minimum to the maximum run (Figures 3-4);
* accuracy_curves_figure: test accuracy during training at chosen levels
  (Figure 2);
* weight_histograms_figure: the winning tickets' initial weights per layer at
  chosen levels (Figure 8).
"""

import io
import os
from typing import Any, Dict, List, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Headless: figures are files, never windows.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

from lottery_ticket.foundations import save_restore  # noqa: E402

Record = Dict[str, Any]
FORMATS = ("png", "svg")
_LINE_ORDER = ("lottery", "reinit", "reuse", "reuse_sign", "rearrange", "random_prune")


def _save(figure, path: str) -> str:
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if extension not in FORMATS:
        raise ValueError(f"figure format {extension!r} is not one of {FORMATS}.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Drawn to memory first, then written atomically like every result file.
    buffer = io.BytesIO()
    figure.savefig(buffer, format=extension, dpi=150, bbox_inches="tight")
    plt.close(figure)
    save_restore.write_bytes_atomically(path, buffer.getvalue())
    return path


def _ordered(names) -> List[str]:
    known = [n for n in _LINE_ORDER if n in names]
    return known + sorted(n for n in names if n not in known)


def _percent_axis(axes, percents: Sequence[float]) -> None:
    axes.set_xscale("log")
    axes.invert_xaxis()  # Pruning proceeds to the right, as in the paper.
    # Ticks at the levels' own sizes (at most ~10), as the paper labels them.
    ticks = sorted(set(round(p, 1) for p in percents), reverse=True)
    step = max(1, int(np.ceil(len(ticks) / 10)))
    axes.xaxis.set_major_locator(FixedLocator(ticks[::step]))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_xlabel("weights remaining (%)")
    axes.grid(True, which="both", alpha=0.3)


def early_stopping_figure(summary: Sequence[Record], metric: str, path: str,
                          title: str) -> str:
    """One line per experiment name of `metric` against weights remaining.

    Args:
      summary: rows from metrics.summarize.
      metric: 'early_stop_iteration' or 'early_stop_test_accuracy' (or any
        summarized metric).
      path: where to write (.png or .svg).
      title: the figure's title (name the experiment).
    """
    labels = {"early_stop_iteration": "early-stopping iteration",
              "early_stop_test_accuracy": "test accuracy at early stopping (%)",
              "final_test_accuracy": "final test accuracy (%)",
              "best_test_accuracy": "best test accuracy (%)"}
    scale = 1.0 if metric == "early_stop_iteration" else 100.0
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = _ordered({row["experiment_name"] for row in summary})
    for name in names:
        rows = sorted((r for r in summary if r["experiment_name"] == name),
                      key=lambda r: -r["remaining"])
        x = np.array([100 * r["remaining"] for r in rows])
        mean = np.array([r[f"{metric}_mean"] for r in rows]) * scale
        low = mean - np.array([r[f"{metric}_min"] for r in rows]) * scale
        high = np.array([r[f"{metric}_max"] for r in rows]) * scale - mean
        runs = max(r["runs"] for r in rows)
        axes.errorbar(x, mean, yerr=[low, high], marker="o", markersize=3, capsize=3,
                      label=f"{name} (up to {runs} runs per level)")
    _percent_axis(axes, [100 * r["remaining"] for r in summary])
    axes.set_ylabel(labels.get(metric, metric))
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _save(figure, path)


def accuracy_curves_figure(curves: Mapping[tuple, Mapping[str, Any]], experiment_name: str,
                           levels: Sequence[int], path: str, title: str) -> str:
    """Test accuracy against training iteration at the chosen levels.

    Args:
      curves: from metrics.curves.
      experiment_name: whose curves to draw (e.g. 'lottery').
      levels: pruning levels to draw; levels without runs are left out.
      path, title: as in early_stopping_figure.
    """
    figure, axes = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for level in levels:
        curve = curves.get((experiment_name, level))
        if curve is None:
            continue
        line, = axes.plot(curve["iteration"], 100 * curve["mean"],
                          label=f"level {level}: {100 * curve['remaining']:.1f}% remaining "
                                f"({curve['runs']} runs)")
        axes.fill_between(curve["iteration"], 100 * curve["min"], 100 * curve["max"],
                          color=line.get_color(), alpha=0.2, linewidth=0)
        drawn += 1
    if not drawn:
        plt.close(figure)
        raise ValueError(f"no {experiment_name!r} runs at levels {list(levels)} to draw.")
    axes.set_xlabel("training iteration")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def weight_histograms_figure(tickets: Mapping[int, Sequence[Mapping[str, Mapping]]],
                             path: str, title: str, bins: int = 60) -> str:
    """Histograms of the surviving weights' initial values, one panel per layer.

    Args:
      tickets: level -> list of {'initial': network, 'masks': network}, one
        per trial; the trials of a level are pooled.
      path, title: as in early_stopping_figure.
      bins: histogram bins.
    """
    levels = sorted(tickets)
    if not levels:
        raise ValueError("no winning tickets to draw.")
    layers = sorted(tickets[levels[0]][0]["masks"])
    figure, axes_row = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.6),
                                    squeeze=False)
    for axes, layer in zip(axes_row[0], layers):
        values_by_level = {}
        for level in levels:
            values_by_level[level] = np.concatenate([
                np.asarray(t["initial"][layer])[np.asarray(t["masks"][layer]) != 0]
                for t in tickets[level]])
        everything = np.concatenate(list(values_by_level.values()))
        edges = np.linspace(everything.min(), everything.max(), bins + 1) if everything.size \
            else np.linspace(-1, 1, bins + 1)
        for level, values in values_by_level.items():
            total = np.size(tickets[level][0]["masks"][layer]) * len(tickets[level])
            axes.hist(values, bins=edges, histtype="step", density=True,
                      label=f"level {level} ({100 * values.size / total:.1f}% remaining)")
        axes.set_title(layer)
        axes.set_xlabel("initial weight value")
        axes.set_ylabel("density")
        axes.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return _save(figure, path)
