"""Measuring winning tickets: early stopping, accuracies, and spreads across trials."""

import math
from typing import Any, Dict, Iterable, List, Mapping, Sequence

import numpy as np

Record = Dict[str, Any]

RUN_METRICS = ("early_stop_iteration", "early_stop_test_accuracy", "final_test_accuracy",
               "best_test_accuracy")


def early_stopping(metrics: Mapping[str, Mapping[str, list]]) -> Dict[str, Any]:
    """The paper's early-stopping point of one run.

    The iteration of minimum validation loss (section 3); where the run has no
    validation split, of minimum test loss (section 2). The first minimum wins
    a tie. NaN or infinite losses (a diverging run) are never the minimum;
    where no loss is finite, the iteration and accuracy are NaN.

    Args:
      metrics: the run's metrics, split -> {'iteration', 'loss', 'accuracy'} lists.

    Returns:
      A dict with 'early_stop_iteration', 'early_stop_split' and
      'early_stop_test_accuracy'. The test accuracy is the test evaluation at
      that iteration, or the nearest one if the test split was evaluated at
      other iterations.

    Raises:
      ValueError: the run evaluated neither a validation nor a test split.
    """
    split = "validate" if metrics.get("validate", {}).get("iteration") else "test"
    if not metrics.get(split, {}).get("iteration"):
        raise ValueError("the run has no validation or test evaluations to stop early on.")
    losses = np.asarray(metrics[split]["loss"], dtype=np.float64)
    finite = np.isfinite(losses)
    result = {"early_stop_iteration": float("nan"), "early_stop_split": split,
              "early_stop_test_accuracy": float("nan")}
    if not finite.any():
        return result
    index = int(np.argmin(np.where(finite, losses, np.inf)))
    iteration = int(metrics[split]["iteration"][index])
    result["early_stop_iteration"] = iteration
    test = metrics.get("test", {})
    if test.get("iteration"):
        nearest = int(np.argmin(np.abs(np.asarray(test["iteration"]) - iteration)))
        result["early_stop_test_accuracy"] = float(test["accuracy"][nearest])
    return result


def run_metrics(record: Record) -> Record:
    """The record (without its curves) plus early stopping and test accuracies.

    Args:
      record: one run record (load_run's).
    """
    metrics = record["metrics"]
    row = {key: value for key, value in record.items() if key not in ("metrics", "settings")}
    row.update(early_stopping(metrics))
    test = metrics.get("test", {})
    if test.get("accuracy"):
        accuracy = np.asarray(test["accuracy"], dtype=np.float64)
        row["final_test_accuracy"] = float(accuracy[-1])
        row["best_test_accuracy"] = (float(np.nanmax(accuracy)) if np.isfinite(accuracy).any()
                                     else float("nan"))
    else:
        row["final_test_accuracy"] = row["best_test_accuracy"] = float("nan")
    return row


def _label(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == "iterations":
        return str(value[1])
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v:g}" if isinstance(v, float) else f"{k}: {v}"
                               for k, v in sorted(value.items())) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def label_series(records: Sequence[Record], keep: Sequence[str] = ("training_len",)
                 ) -> List[Record]:
    """Records whose experiment name says the settings that set its runs apart.

    Runs under one experiment name that differ in a setting that changes
    results (rewind_iteration, pruning, model, ...) are not averaged together:
    each group becomes its own series, named e.g. ``lottery (rewind_iteration=500)``,
    with ``base_name`` keeping the directory's name. Settings in `keep` do not
    split (runs of different training lengths are noted by the report instead).

    Args:
      records: run records.
      keep: settings that do not split a series.

    Returns:
      New records (the inputs are not changed), in the same order.
    """
    by_name: Dict[str, List[Record]] = {}
    for record in records:
        by_name.setdefault(record["experiment_name"], []).append(record)
    labelled = {}
    for name, members in by_name.items():
        settings = [m.get("settings", {}) for m in members]
        keys = sorted({k for s in settings for k in s} - set(keep))
        differing = [k for k in keys
                     if len({repr(s.get(k)) for s in settings}) > 1]
        for member, setting in zip(members, settings):
            suffix = ", ".join(f"{k}={_label(setting.get(k))}" for k in differing)
            labelled[id(member)] = dict(member, base_name=name, experiment_name=(
                f"{name} ({suffix})" if suffix else name))
    return [labelled[id(record)] for record in records]


def _spread(values: Sequence[float]) -> Dict[str, float]:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return {"mean": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": float(np.mean(finite)), "min": float(min(finite)),
            "max": float(max(finite))}


def summarize(rows: Iterable[Record], metrics: Sequence[str] = RUN_METRICS) -> List[Record]:
    """Mean, minimum and maximum of each metric per experiment name and level.

    Args:
      rows: from run_metrics.
      metrics: the columns to summarize.

    Returns:
      One record per (experiment_name, level), sorted, with `runs`, `trials`,
      `remaining` (mean fraction of weights remaining) and for each metric
      `{metric}_mean`, `{metric}_min` and `{metric}_max`: the spread over every
      run of that experiment at that level (trials, and run ids of controls).
    """
    groups: Dict[tuple, List[Record]] = {}
    for row in rows:
        groups.setdefault((row["experiment_name"], row["level"]), []).append(row)
    summary = []
    for (name, level), members in sorted(groups.items()):
        entry = {"experiment_name": name, "level": level, "runs": len(members),
                 "trials": len({m["trial"] for m in members}),
                 "remaining": float(np.mean([m["remaining"] for m in members]))}
        for metric in metrics:
            for statistic, value in _spread([m.get(metric) for m in members]).items():
                entry[f"{metric}_{statistic}"] = value
        summary.append(entry)
    return summary


def curves(records: Iterable[Record], split: str = "test", value: str = "accuracy"
           ) -> Dict[tuple, Dict[str, np.ndarray]]:
    """Per (experiment_name, level): mean, min and max of a curve across runs.

    Runs are aligned on the iterations they all evaluated. A NaN value makes
    its iteration's mean, minimum and maximum NaN (a gap in the figure), so a
    point is never the mean of fewer runs than `runs` says.

    Args:
      records: run records (load_experiment's, with their metrics).
      split: 'train', 'validation' or 'test'.
      value: 'accuracy' or 'loss'.

    Returns:
      (experiment_name, level) -> {'iteration', 'mean', 'min', 'max', 'runs',
      'remaining'}.
    """
    groups: Dict[tuple, List[Record]] = {}
    for record in records:
        if record["metrics"].get(split, {}).get("iteration"):
            groups.setdefault((record["experiment_name"], record["level"]), []).append(record)
    result = {}
    for key, members in sorted(groups.items()):
        common = sorted(set.intersection(*(set(m["metrics"][split]["iteration"])
                                           for m in members)))
        if not common:
            continue
        stacked = np.array([[dict(zip(m["metrics"][split]["iteration"],
                                      m["metrics"][split][value]))[i] for i in common]
                            for m in members], dtype=np.float64)
        result[key] = {"iteration": np.asarray(common), "mean": stacked.mean(axis=0),
                       "min": stacked.min(axis=0), "max": stacked.max(axis=0),
                       "runs": len(members),
                       "remaining": float(np.mean([m["remaining"] for m in members]))}
    return result
