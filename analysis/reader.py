"""Reading experiments back into tidy records.

An experiment tree is ``{root}/trial{N}/{level}/{experiment_name}{run_id}/``.
``load_experiment(root)`` walks it and returns one record per run plus a list of
problems: a run that is incomplete or malformed is reported with its path and
the reason, and the rest of the tree still loads.

Records are plain dicts, so ``pandas.DataFrame(records)`` works where pandas is
installed, and ``tables.write_csv`` writes them without it.
"""

import dataclasses
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore

Record = Dict[str, Any]
SPLITS = ("train", "validate", "test")
# The original TensorFlow 1 codebase named its lottery runs `same_init`; such
# trees are read as lottery runs, so they land in the same figures and tables.
RUN_NAME_ALIASES = {"same_init": "lottery"}
_TRIAL = re.compile(r"^trial(\w+)$")


@dataclasses.dataclass
class Problem:
    """A run (or directory) that could not be read, and why."""
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class MalformedRun(ValueError):
    """A run directory whose files are missing or inconsistent."""


def _check_metrics(metrics: Any, path: str) -> Dict[str, Dict[str, list]]:
    if not isinstance(metrics, dict) or not metrics:
        raise MalformedRun(f"{path} holds no evaluated split")
    for split, record in metrics.items():
        if not isinstance(record, dict) or not {"iteration", "loss", "accuracy"} <= set(record):
            raise MalformedRun(f"{path}: split {split!r} lacks iteration/loss/accuracy")
        lengths = {len(record[key]) for key in ("iteration", "loss", "accuracy")}
        if len(lengths) != 1:
            raise MalformedRun(f"{path}: split {split!r} has lists of different lengths")
    return metrics


def read_metrics(run_directory: str) -> Dict[str, Dict[str, list]]:
    """A run's metrics.json: split -> {'iteration', 'loss', 'accuracy'} lists."""
    path = paths.metrics(run_directory)
    if not os.path.isfile(path):
        raise MalformedRun(f"{paths.METRICS_FILENAME} is missing")
    try:
        metrics = save_restore.read_json(path)
    except (OSError, ValueError) as error:
        raise MalformedRun(f"{paths.METRICS_FILENAME} is not valid JSON ({error})") from error
    return _check_metrics(metrics, paths.METRICS_FILENAME)


def mask_counts(run_directory: str, done: Optional[Dict[str, Any]] = None
                ) -> Dict[str, Tuple[int, int]]:
    """layer -> (surviving weights, all weights), from done.json or the masks."""
    if done and "mask_counts" in done:
        return {name: (int(kept), int(total)) for name, (kept, total)
                in done["mask_counts"].items()}
    try:
        masks = save_restore.restore_network(paths.masks(run_directory))
    except FileNotFoundError as error:
        raise MalformedRun(f"masks are missing ({error})") from error
    return {name: (int(np.count_nonzero(m)), int(m.size)) for name, m in masks.items()}


def load_run(run_directory: str, trial: Optional[str] = None) -> Record:
    """One run as a record.

    Returns:
      A dict with path, trial, level, experiment_name, run_id, the
      per-layer and overall fraction of weights remaining (``remaining``,
      ``remaining_{layer}``), the seeds and timing from done.json, and
      ``metrics`` (split -> lists).

    Raises:
      MalformedRun: the run is incomplete or its files are missing or broken.
    """
    run_directory = os.path.normpath(run_directory)
    if not runs.is_complete(run_directory):
        raise MalformedRun(f"incomplete: no {paths.DONE_FILENAME} (still running, or "
                           "interrupted; rerunning its command finishes it)")
    try:
        done = save_restore.read_json(paths.done(run_directory))
    except (OSError, ValueError) as error:
        raise MalformedRun(f"{paths.DONE_FILENAME} is not valid JSON ({error})") from error
    metrics = read_metrics(run_directory)
    counts = mask_counts(run_directory, done)
    level_dir = os.path.dirname(run_directory)
    directory_name, run_id = paths.split_run_name(os.path.basename(run_directory))
    name = RUN_NAME_ALIASES.get(directory_name, directory_name)
    info = done.get("run_info", {})
    record: Record = {
        "path": run_directory,
        "trial": trial if trial is not None else _trial_name(os.path.dirname(level_dir)),
        "level": int(os.path.basename(level_dir)) if os.path.basename(level_dir).isdigit()
        else info.get("level"),
        "experiment_name": name,
        "run_id": run_id,
        "iterations": done.get("iterations"),
        "seconds": done.get("seconds"),
        "model_seed": done.get("model_seed"),
        "train_order_seed": done.get("train_order_seed"),
        "control": info.get("control", "lottery" if name == "lottery" else None),
        "metrics": metrics,
    }
    kept = sum(k for k, _ in counts.values())
    total = sum(t for _, t in counts.values())
    record["remaining"] = kept / total if total else float("nan")
    for layer, (layer_kept, layer_total) in sorted(counts.items()):
        record[f"remaining_{layer}"] = layer_kept / layer_total
    return record


def _trial_name(directory: str) -> Optional[str]:
    match = _TRIAL.match(os.path.basename(directory))
    return match.group(1) if match else None


def _is_run_name(name: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name))


def find_runs(root: str) -> Tuple[List[Tuple[str, str]], List[Problem]]:
    """(trial, run directory) pairs under an experiment root, and odd directories.

    `root` may be an experiment root holding trial{N}/ directories, or a
    single trial directory.
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no experiment at {root!r}: expected a directory of "
                                "trial{N}/ folders (or one trial folder).")
    trials = sorted(entry for entry in os.listdir(root)
                    if _TRIAL.match(entry) and os.path.isdir(os.path.join(root, entry)))
    if trials:
        trial_dirs = [(_TRIAL.match(t).group(1), os.path.join(root, t)) for t in trials]
    else:
        trial_dirs = [(_trial_name(os.path.abspath(root)) or os.path.basename(root), root)]
    runs, problems = [], []
    for trial, trial_dir in trial_dirs:
        for level in sorted(os.listdir(trial_dir)):
            level_dir = os.path.join(trial_dir, level)
            if not os.path.isdir(level_dir):
                continue  # batch logs and records sit beside the runs
            if not level.isdigit():
                problems.append(Problem(level_dir, "not a level directory (expected a "
                                                   "number); left out"))
                continue
            for name in sorted(os.listdir(level_dir)):
                run_dir = os.path.join(level_dir, name)
                if not os.path.isdir(run_dir):
                    continue
                if not _is_run_name(name):
                    problems.append(Problem(run_dir, "not a run directory name; left out"))
                    continue
                runs.append((trial, run_dir))
    return runs, problems


def load_experiment(root: str) -> Tuple[List[Record], List[Problem]]:
    """Every readable run under `root`, and a Problem for each one that is not.

    Returns:
      (records, problems): records sorted by experiment name, level, trial and
      run id; problems name each incomplete or malformed run by path.
    """
    found, problems = find_runs(root)
    records = []
    for trial, run_dir in found:
        try:
            records.append(load_run(run_dir, trial))
        except MalformedRun as error:
            problems.append(Problem(run_dir, str(error)))
    records.sort(key=lambda r: (r["experiment_name"], r["level"], _sortable(r["trial"]),
                                _sortable(r["run_id"])))
    return records, problems


def _sortable(value) -> Tuple[int, Any]:
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def evaluations(records: List[Record]) -> List[Record]:
    """The long table: one row per run, split and evaluated iteration."""
    rows = []
    for record in records:
        for split, values in record["metrics"].items():
            for iteration, loss, accuracy in zip(values["iteration"], values["loss"],
                                                 values["accuracy"]):
                rows.append({"trial": record["trial"], "level": record["level"],
                             "experiment_name": record["experiment_name"],
                             "run_id": record["run_id"], "remaining": record["remaining"],
                             "split": split, "iteration": iteration, "loss": loss,
                             "accuracy": accuracy})
    return rows


def load_network(run_directory: str, which: str = "final") -> Dict[str, np.ndarray]:
    """A run's 'initial', 'final' or 'masks' as a dict layer -> array."""
    if which not in ("initial", "final", "masks"):
        raise ValueError(f"which must be 'initial', 'final' or 'masks', got {which!r}.")
    return save_restore.restore_network(getattr(paths, which)(run_directory))

