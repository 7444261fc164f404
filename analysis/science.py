"""Reading the instability analyses and supermask evaluations of an experiment tree.

Both write records beside a trial's runs (experiments.instability:
{trial}/{level}/instability_k{k}/instability.json; experiments.supermask:
{trial}/supermask.json). These readers need no TensorFlow, so the report
reads them as it reads runs.
"""

import math
import os
from typing import Any, Dict, List, Sequence

from lottery_ticket.analysis import reader
from lottery_ticket.foundations import save_restore

INSTABILITY_RECORD = "instability.json"
INSTABILITY_PREFIX = "instability_k"
SUPERMASK_RECORD = "supermask.json"


def _trials(root: str) -> List[tuple]:
    """(trial name, directory) of each trial under root (or root itself as one trial)."""
    if not os.path.isdir(root):
        return []
    found = sorted(entry for entry in os.listdir(root)
                   if reader.TRIAL_PATTERN.match(entry)
                   and os.path.isdir(os.path.join(root, entry)))
    if found:
        return [(reader.TRIAL_PATTERN.match(entry).group(1), os.path.join(root, entry))
                for entry in found]
    return [(os.path.basename(os.path.normpath(root)), root)]


def read_instability(root: str) -> List[Dict[str, Any]]:
    """One row per instability analysis under `root`.

    A row holds the trial, level, remaining, k, instability, the endpoints' errors and the
    highest error on the path.

    Args:
      root: an experiment root, or one trial's directory.
    """
    rows = []
    for trial, trial_dir in _trials(root):
        for level in sorted(os.listdir(trial_dir)):
            level_dir = os.path.join(trial_dir, level)
            if not (level.isdigit() and os.path.isdir(level_dir)):
                continue
            for name in sorted(os.listdir(level_dir)):
                path = os.path.join(level_dir, name, INSTABILITY_RECORD)
                if not (name.startswith(INSTABILITY_PREFIX) and os.path.isfile(path)):
                    continue
                record = save_restore.read_json(path)
                errors = [point["error"] for point in record["path"]]
                rows.append({"trial": trial, "level": int(record["level"]),
                             "remaining": float(record["remaining"]), "k": int(record["k"]),
                             "instability": float(record["instability"]),
                             "error_a": errors[0], "error_b": errors[-1],
                             "highest_error": max(errors), "points": len(errors)})
    return sorted(rows, key=lambda r: (r["level"], r["k"], r["trial"]))


def read_supermasks(root: str) -> List[Dict[str, Any]]:
    """One row per trial and level with a supermask evaluation under `root`.

    A row holds the trial, criterion (the trial's prune_scores), level, remaining and both
    accuracies.

    Args:
      root: an experiment root, or one trial's directory.
    """
    rows = []
    for trial, trial_dir in _trials(root):
        path = os.path.join(trial_dir, SUPERMASK_RECORD)
        if not os.path.isfile(path):
            continue
        record = save_restore.read_json(path)
        for entry in record["levels"]:
            rows.append({"trial": trial, "criterion": record["criterion"],
                         "level": int(entry["level"]), "remaining": float(entry["remaining"]),
                         "init_accuracy": float(entry["init"]["accuracy"]),
                         "signed_constant_accuracy":
                             float(entry["signed_constant"]["accuracy"])})
    return sorted(rows, key=lambda r: (r["criterion"], r["level"], r["trial"]))


def mean_by(rows: Sequence[Dict[str, Any]], keys: Sequence[str],
            values: Sequence[str]) -> List[Dict[str, Any]]:
    """Rows grouped by `keys`, with the mean, min and max of `values`.

    Rows grouped by `keys`: the mean, min and max of each of `values`, and the
    number of rows ('trials').

    Args:
      rows: dicts, one per row.
      keys: the fields rows are grouped by.
      values: the numeric fields summarized.
    """
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    result = []
    for group_key, members in sorted(groups.items()):
        row = dict(zip(keys, group_key), trials=len(members))
        for value in values:
            numbers = [member[value] for member in members
                       if isinstance(member[value], (int, float)) and math.isfinite(member[value])]
            row[value] = sum(numbers) / len(numbers) if numbers else float("nan")
            row[f"{value}_min"] = min(numbers) if numbers else float("nan")
            row[f"{value}_max"] = max(numbers) if numbers else float("nan")
        result.append(row)
    return result


def instability_markdown(rows: Sequence[Dict[str, Any]], title: str) -> str:
    """The instability table as Markdown.

    The instability table: per level (weights remaining) and k, the mean
    instability and endpoint error over trials, in percent.

    Args:
      rows: read_instability's rows.
      title: the table's heading, before ': instability analysis'.
    """
    summary = mean_by(rows, ("level", "k"), ("remaining", "instability", "error_a",
                                             "error_b", "highest_error"))
    lines = [f"# {title}: instability analysis", "",
             "| level | weights remaining | k | trials | instability (%) | "
             "endpoint errors a / b (%) | highest error on path (%) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in summary:
        lines.append(f"| {row['level']} | {100 * row['remaining']:.1f}% | {row['k']} | "
                     f"{row['trials']} | {100 * row['instability']:.2f} | "
                     f"{100 * row['error_a']:.2f} / {100 * row['error_b']:.2f} | "
                     f"{100 * row['highest_error']:.2f} |")
    return "\n".join(lines) + "\n"
