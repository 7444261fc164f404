"""The paper's figures, drawn with matplotlib's object-oriented API.

Every function returns a ``matplotlib.figure.Figure`` (in a notebook it
displays inline as the value of a cell) and, given a path, also writes it
there atomically. No pyplot: importing this module and drawing these figures
leave the host's backend, pyplot's figure list and rcParams alone.

* early_stopping_figure: early-stopping iteration, or test accuracy at early
  stopping, against the percent of weights remaining (log scale), one line
  per experiment, error bars from the minimum to the maximum run (Figures 3-4);
  each experiment has its own marker and line style and is drawn a little to
  the side of its level (dodged), so two experiments with equal values are
  both visible;
* accuracy_curves_figure: test accuracy during training at chosen levels
  (Figure 2);
* weight_histograms_figure: the winning tickets' initial weights per layer at
  chosen levels (Figure 8);
* instability_figure, supermask_figure: instability against k, supermask
  accuracy against weights remaining per mask criterion (analysis.science).
"""

import io
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from lottery_ticket.analysis import science
from lottery_ticket.analysis.tables import plural
from lottery_ticket.experiments import kinds
from lottery_ticket.foundations import save_restore

Record = Dict[str, Any]
FORMATS = ("png", "svg")
# One per series, so lines with equal values stay distinguishable.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")
# Horizontal dodge between neighbouring experiments, as a fraction of the
# x axis's span in decades: equal values side by side instead of on top.
_DODGE = 0.012


def _style(index: int) -> Dict[str, Any]:
    # Shifted once per round of markers: matplotlib's ten colours would otherwise
    # pair with the same marker again from the eleventh series on.
    return {"marker": _MARKERS[(index + index // len(_MARKERS)) % len(_MARKERS)],
            "linestyle": _LINESTYLES[index % len(_LINESTYLES)]}


def _dodge_step(percents: Sequence[float], series: int) -> float:
    """Decades between neighbouring series on the log axis: _DODGE of the
    axis's span, but never so wide that one level's group reaches the next."""
    logs = np.unique(np.round(np.log10([p for p in percents if p > 0]), 3))
    if logs.size < 2:
        return _DODGE
    step = _DODGE * (logs[-1] - logs[0])
    gaps = np.diff(logs)
    gaps = gaps[gaps > 0.005]  # levels, not the small spread within one level
    if gaps.size:
        step = min(step, 0.6 * gaps.min() / max(series - 1, 1))
    return float(step)


def runs_per_level(counts: Sequence[int]) -> str:
    """'1 run per level', '3 runs per level', '1-3 runs per level'.

    Args:
      counts: the number of runs at each level.
    """
    low, high = min(counts), max(counts)
    if low == high:
        return f"{plural(high, 'run')} per level"
    return f"{low}-{high} runs per level"


class ShownFigure(Figure):
    """A Figure that shows itself as a PNG where IPython displays it.

    Jupyter draws figures inline through a formatter that pyplot's inline
    backend registers; a figure made without pyplot in a kernel where pyplot was
    never imported would show only as text. This one renders itself instead.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def check_path(path: str) -> None:
    """Raises ValueError unless `path` names a file ending in one of FORMATS.

    Args:
      path: the figure's file.

    Raises:
      ValueError: no file name, or an extension not in FORMATS.
    """
    stem, extension = os.path.splitext(os.path.basename(path))
    extension = extension.lstrip(".").lower()
    if not stem or stem.startswith(".") and not extension:
        raise ValueError(f"figure path {path!r} has no file name: give one such as "
                         "figures/early_stop.png.")
    if extension not in FORMATS:
        raise ValueError(f"figure format {extension!r} of {path} is not one of {FORMATS}: "
                         "name the file .png or .svg.")


def save(figure: Figure, path: str) -> str:
    """Writes a figure to a .png or .svg file atomically.

    Writes `figure` to `path` (.png or .svg) atomically, creating its directory
    if needed; returns the path.

    Args:
      figure: the figure.
      path: its file, ending in .png or .svg.

    Raises:
      ValueError: a path without a file name or of another format (check_path).
      OSError: the file cannot be written (the message names it).
    """
    check_path(path)
    # Drawn to memory first, then written atomically like every result file.
    buffer = io.BytesIO()
    figure.savefig(buffer, format=os.path.splitext(path)[1].lstrip(".").lower(), dpi=150,
                   bbox_inches="tight")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_restore.write_bytes_atomically(path, buffer.getvalue())
    except OSError as error:
        raise OSError(error.errno, f"cannot write the figure {path}: "
                                   f"{error.strerror or error}") from error
    return path


def _finish(figure: Figure, path: Optional[str]) -> Figure:
    if path is not None:
        save(figure, path)
    return figure


def _ordered(names) -> List[str]:
    """Experiment names in the order their kinds give (experiments.kinds), then
    the others by name."""
    # A series of a kind's runs (metrics.label_series: 'lottery (rewind_iteration=100)')
    # takes its run name's place.
    order = {name: index for index, name in enumerate(kinds.line_order())}
    known = sorted((n for n in names if n.split(" (")[0] in order),
                   key=lambda n: (order[n.split(" (")[0]], n))
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


def early_stopping_figure(summary: Sequence[Record], metric: str,
                          path: Optional[str] = None, title: str = "") -> Figure:
    """One line per experiment name of `metric` against weights remaining.

    Args:
      summary: rows from metrics.summarize.
      metric: 'early_stop_iteration' or 'early_stop_test_accuracy' (or any
        summarized metric).
      path: where to also write it (.png or .svg; its directory is created if
        needed); None writes nothing.
      title: the figure's title (name the experiment).

    Returns:
      The figure.

    Raises:
      ValueError: a bad `path` (see check_path), or no summary rows.
    """
    if path is not None:
        check_path(path)
    if not summary:
        raise ValueError("no summary rows to draw: the experiment has no complete runs.")
    figure = ShownFigure(figsize=(7, 4.5))
    _early_stopping_axes(figure.subplots(), summary, metric, title)
    return _finish(figure, path)


_METRIC_LABELS = {"early_stop_iteration": "early-stopping iteration",
                  "early_stop_test_accuracy": "test accuracy at early stopping (%)",
                  "final_test_accuracy": "final test accuracy (%)",
                  "best_test_accuracy": "best test accuracy (%)"}


def _early_stopping_axes(axes, summary: Sequence[Record], metric: str, title: str) -> None:
    if summary and f"{metric}_mean" not in summary[0]:
        known = sorted(key[:-len("_mean")] for key in summary[0] if key.endswith("_mean"))
        raise ValueError(f"metric {metric!r} is not in the summary; summarized metrics: "
                         f"{', '.join(known)}.")
    scale = 1.0 if metric == "early_stop_iteration" else 100.0
    names = _ordered({row["experiment_name"] for row in summary})
    step = _dodge_step([100 * r["remaining"] for r in summary], len(names))
    for index, name in enumerate(names):
        rows = sorted((r for r in summary if r["experiment_name"] == name),
                      key=lambda r: -r["remaining"])
        shift = 10 ** ((index - (len(names) - 1) / 2) * step)
        x = np.array([100 * r["remaining"] for r in rows]) * shift
        mean = np.array([r[f"{metric}_mean"] for r in rows], dtype=np.float64) * scale
        # Clipped at 0: the mean of equal values can round a hair past them.
        low = np.maximum(
            mean - np.array([r[f"{metric}_min"] for r in rows], dtype=np.float64) * scale, 0)
        high = np.maximum(
            np.array([r[f"{metric}_max"] for r in rows], dtype=np.float64) * scale - mean, 0)
        axes.errorbar(x, mean, yerr=[low, high], markersize=5, capsize=3,
                      **dict(kinds.style(name) or _style(index)),
                      label=f"{kinds.label(name)} "
                            f"({runs_per_level([r['runs'] for r in rows])})")
    _percent_axis(axes, [100 * r["remaining"] for r in summary])
    axes.set_ylabel(_METRIC_LABELS.get(metric, metric))
    axes.set_title(title)
    axes.legend(fontsize=8)


def comparison_figure(summary: Sequence[Record], series: Sequence[str],
                      path: Optional[str] = None, title: str = "") -> Figure:
    """Early-stopping iteration and test accuracy there, side by side, for chosen series.

    The paper's Figure 4 compares iterative with one-shot pruning this way;
    the report also draws the lottery runs rewound to different iterations.

    Args:
      summary: rows from metrics.summarize.
      series: the experiment names to draw (e.g. ['lottery', 'oneshot']).
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.

    Returns:
      The figure.

    Raises:
      ValueError: a bad `path`, or a series with no runs.
    """
    if path is not None:
        check_path(path)
    rows = [row for row in summary if row["experiment_name"] in set(series)]
    missing = sorted(set(series) - {row["experiment_name"] for row in rows})
    if missing:
        raise ValueError(f"no runs of {missing} to compare; experiments with runs: "
                         f"{sorted({row['experiment_name'] for row in summary})}.")
    figure = ShownFigure(figsize=(12, 5 + 0.2 * len(series)), layout="constrained")
    left, right = figure.subplots(1, 2)
    _early_stopping_axes(left, rows, "early_stop_iteration", "early-stopping iteration")
    _early_stopping_axes(right, rows, "early_stop_test_accuracy",
                         "test accuracy at early stopping")
    # One legend for both panels, below them, where long series names cover nothing.
    handles, labels = left.get_legend_handles_labels()
    for axes in (left, right):
        axes.get_legend().remove()
    figure.legend(handles, labels, loc="outside lower center", fontsize=8,
                  ncols=1 if max(map(len, labels)) > 40 else 2)
    figure.suptitle(title)
    return _finish(figure, path)


def prune_at_init_series(names: Sequence[str]) -> List[str]:
    """The series a pruning-at-initialization figure draws, in line order.

    The lottery tickets (each rewind_iteration its own series), random_prune and every
    prune_at_init_{score}[_{ablation}] series; [] when there is no prune_at_init run.

    Args:
      names: the experiment names (series) of the records.
    """
    def base(name: str) -> str:
        return name.split(" (")[0]

    if not any(base(name).startswith("prune_at_init_") for name in names):
        return []
    chosen = [name for name in names if base(name) in ("lottery", "random_prune")
              or base(name).startswith("prune_at_init_")]
    return _ordered(chosen)


def prune_at_init_figure(summary: Sequence[Record], path: Optional[str] = None,
                         title: str = "", metric: str = "final_test_accuracy") -> Figure:
    """Draws pruning at initialization against lottery tickets and random pruning.

    Accuracy against weights remaining for lottery tickets (with and without
    rewinding), each score at initialization, random pruning and the ablations
    (prune_at_init_series), error bars from the minimum to the maximum trial.

    Args:
      summary: rows from metrics.summarize.
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.
      metric: the summarized accuracy to draw (final test accuracy by default, as
        the pruning-at-initialization papers report).

    Raises:
      ValueError: the summary has no prune_at_init runs.
    """
    if path is not None:
        check_path(path)
    series = set(prune_at_init_series(sorted({row["experiment_name"] for row in summary})))
    if not series:
        raise ValueError("no prune_at_init runs to draw; experiments with runs: "
                         f"{sorted({row['experiment_name'] for row in summary})}.")
    figure = ShownFigure(figsize=(8, 5.5))
    _early_stopping_axes(figure.subplots(),
                         [row for row in summary if row["experiment_name"] in series],
                         metric, title)
    return _finish(figure, path)


def accuracy_curves_figure(curves: Mapping[tuple, Mapping[str, Any]], experiment_name: str,
                           levels: Sequence[int], path: Optional[str] = None,
                           title: str = "") -> Figure:
    """Test accuracy against training iteration at the chosen levels.

    Args:
      curves: from metrics.curves.
      experiment_name: whose curves to draw (e.g. 'lottery').
      levels: pruning levels to draw; levels without runs are left out.
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.

    Returns:
      The figure.

    Raises:
      ValueError: a bad `path`, or no runs of `experiment_name` at `levels`.
    """
    if path is not None:
        check_path(path)
    figure = ShownFigure(figsize=(7, 4.5))
    axes = figure.subplots()
    drawn = 0
    for level in levels:
        curve = curves.get((experiment_name, level))
        if curve is None:
            continue
        # Markers at about ten points, staggered between levels, and a line
        # style per level: identical curves stay distinguishable.
        every = max(1, len(curve["iteration"]) // 10)
        line, = axes.plot(curve["iteration"], 100 * curve["mean"], markersize=6,
                          fillstyle="none",
                          markevery=(drawn % every, every), **_style(drawn),
                          label=f"level {level}: {100 * curve['remaining']:.1f}% remaining "
                                f"({plural(curve['runs'], 'run')})")
        axes.fill_between(curve["iteration"], 100 * curve["min"], 100 * curve["max"],
                          color=line.get_color(), alpha=0.2, linewidth=0)
        drawn += 1
    if not drawn:
        raise ValueError(f"no {experiment_name!r} runs at levels {list(levels)} to draw.")
    axes.set_xlabel("training iteration")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return _finish(figure, path)


def weight_histograms_figure(tickets: Mapping[int, Sequence[Mapping[str, Mapping]]],
                             path: Optional[str] = None, title: str = "",
                             bins: int = 60) -> Figure:
    """Histograms of the surviving weights' initial values, one panel per layer.

    Each panel's legend sits below it, outside the axes, so it never covers
    the bars. Each level has its own line style.

    Args:
      tickets: level -> list of {'initial': network, 'masks': network}, one
        per trial; the trials of a level are pooled. Each ticket's initial
        and masks hold the same layers with the same shapes
        (reader.load_ticket checks that).
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.
      bins: histogram bins.

    Returns:
      The figure.

    Raises:
      ValueError: a bad `path`, or no tickets to draw.
    """
    if path is not None:
        check_path(path)
    levels = sorted(level for level in tickets if tickets[level])
    if not levels:
        raise ValueError("no winning tickets to draw.")
    layers = sorted({layer for level in levels for t in tickets[level] for layer in t["masks"]})
    # A row of panels, and under each an empty row holding its legend: the
    # legend is outside the axes, tall enough for every level, and never on
    # the bars or the axis labels.
    legend_height = 0.25 + 0.16 * len(levels)
    figure = ShownFigure(layout="constrained",
                         figsize=(4.2 * len(layers), 3.6 + legend_height))
    grid = figure.subplots(2, len(layers), squeeze=False,
                           gridspec_kw={"height_ratios": [3.2, legend_height]})
    for axes, legend_axes, layer in zip(grid[0], grid[1], layers):
        legend_axes.axis("off")
        values_by_level, totals, counts = {}, {}, {}
        for level in levels:
            having = [t for t in tickets[level] if layer in t["masks"]]
            if not having:
                continue
            values_by_level[level] = np.concatenate([
                np.asarray(t["initial"][layer]).ravel()[
                    np.asarray(t["masks"][layer]).ravel() != 0] for t in having])
            totals[level] = sum(np.size(t["masks"][layer]) for t in having)
            counts[level] = len(having)
        everything = np.concatenate(list(values_by_level.values()))
        everything = everything[np.isfinite(everything)]
        if everything.size and everything.min() < everything.max():
            edges = np.linspace(everything.min(), everything.max(), bins + 1)
        else:  # nothing, or one value: a unit-wide window around it
            centre = float(everything[0]) if everything.size else 0.0
            edges = np.linspace(centre - 1, centre + 1, bins + 1)
        for index, (level, values) in enumerate(values_by_level.items()):
            share = 100 * values.size / totals[level] if totals[level] else float("nan")
            axes.hist(values[np.isfinite(values)], bins=edges, histtype="step",
                      density=bool(values.size), linestyle=_LINESTYLES[index % len(_LINESTYLES)],
                      linewidth=1.2, label=f"level {level}: {share:.1f}% remaining "
                                           f"({plural(counts[level], 'run')})")
        axes.set_title(layer)
        axes.set_xlabel("initial weight value")
        axes.set_ylabel("density")
        handles, labels = axes.get_legend_handles_labels()
        legend_axes.legend(handles, labels, fontsize=7, loc="upper center", frameon=False)
    figure.suptitle(title)
    return _finish(figure, path)


def instability_figure(rows: Sequence[Record], path: Optional[str] = None,
                       title: str = "instability analysis") -> Figure:
    """Draws instability against the iteration the copies start from.

    Instability (highest test error on the path between two copies minus their
    mean, in percent) against the iteration k the copies start from: one line
    per level (the dense network, tickets at their weights remaining), the mean
    over trials with bars from the lowest to the highest (analysis.science
    read_instability's rows).

    Args:
      rows: analysis.science.read_instability's rows.
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.
    """
    figure = ShownFigure(figsize=(6.4, 4.2))
    axes = figure.add_subplot()
    summary = science.mean_by(rows, ("level", "k"), ("remaining", "instability"))
    for index, level in enumerate(sorted({row["level"] for row in summary})):
        points = [row for row in summary if row["level"] == level]
        ks = np.array([row["k"] for row in points], float)
        mean = 100 * np.array([row["instability"] for row in points])
        low = 100 * np.array([row["instability_min"] for row in points])
        high = 100 * np.array([row["instability_max"] for row in points])
        label = ("dense" if level == 0 else
                 f"ticket, {100 * points[0]['remaining']:.1f}% remaining")
        axes.errorbar(ks, mean, yerr=[mean - low, high - mean], label=label, capsize=3,
                      **_style(index))
    if rows and min(row["k"] for row in rows) >= 0 and len({r["k"] for r in rows}) > 1:
        axes.set_xscale("symlog", linthresh=max(1, min(r["k"] for r in rows if r["k"] > 0)))
    axes.set_xlabel("k: iteration the two copies start from")
    axes.set_ylabel("instability: error barrier (%)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    axes.set_title(title)
    return _finish(figure, path)


def supermask_figure(rows: Sequence[Record], path: Optional[str] = None,
                     title: str = "supermasks") -> Figure:
    """Draws the untrained masked networks' accuracy against weights remaining.

    Test accuracy of the untrained masked network against weights remaining,
    one line per mask criterion: solid at the initial weights, dashed with the
    signed constant initialization; the mean over trials (analysis.science
    read_supermasks's rows).

    Args:
      rows: analysis.science.read_supermasks's rows.
      path: as in early_stopping_figure.
      title: as in early_stopping_figure.
    """
    figure = ShownFigure(figsize=(7.2, 4.5))
    axes = figure.add_subplot()
    summary = science.mean_by(rows, ("criterion", "level"),
                              ("remaining", "init_accuracy", "signed_constant_accuracy"))
    for index, criterion in enumerate(sorted({row["criterion"] for row in summary})):
        points = sorted((row for row in summary if row["criterion"] == criterion),
                        key=lambda row: -row["remaining"])
        percents = [100 * row["remaining"] for row in points]
        style = _style(index)
        line, = axes.plot(percents, [100 * row["init_accuracy"] for row in points],
                          marker=style["marker"], linestyle="-", label=criterion)
        axes.plot(percents, [100 * row["signed_constant_accuracy"] for row in points],
                  marker=style["marker"], linestyle="--", color=line.get_color(),
                  label=f"{criterion} (signed constant)")
    _percent_axis(axes, [100 * row["remaining"] for row in summary] or [100.0])
    axes.set_ylabel("test accuracy without training (%)")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    axes.set_title(title)
    return _finish(figure, path)
