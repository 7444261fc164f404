"""Reading experiments back into tidy records.

An experiment tree is ``{root}/trial{N}/{level}/{experiment_name}{run_id}/``.
``load_experiment(root)`` walks it and returns one record per run plus a list of
problems: a run that is incomplete, diverged or malformed is reported with its
path and the reason, and the rest of the tree still loads. ``load_run``
checks everything the analysis reads (done.json, metrics.json, the mask
counts, and that the run's .npy files are whole), so a record it returns can
be measured and drawn without further checks.

Records are plain dicts, so ``pandas.DataFrame(records)`` works where pandas is
installed, and ``tables.write_csv`` writes them without it.
"""

import dataclasses
import math
import numbers
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments import kinds
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore

Record = Dict[str, Any]
SPLITS = ("train", "validate", "test")
TRIAL_PATTERN = re.compile(r"^trial(\w+)$")
_TRIAL = TRIAL_PATTERN


# Problem.kind values.
INCOMPLETE, DIVERGED, MALFORMED, LAYOUT = "incomplete", "diverged", "malformed", "layout"
NOTE = "note"  # not a run: something the report left out, and why
NETWORKS = ("initial", "final", "masks")


@dataclasses.dataclass
class Problem:
    """A run (or directory) that could not be read, and why.

    `kind` sorts problems: 'incomplete', 'diverged', 'malformed' (a run whose
    files are damaged), 'layout' (a directory that is not a run) or 'note'
    (a part of the report left out).

    Attributes:
      path: the run or directory.
      reason: what is wrong, in words.
      kind: 'incomplete', 'diverged', 'malformed', 'layout' or 'note' (above).
    """
    path: str
    reason: str
    kind: str = MALFORMED

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class MalformedRun(ValueError):
    """A run directory whose files are missing or inconsistent."""
    kind = MALFORMED


class IncompleteRun(MalformedRun):
    """A run without done.json: still running, or interrupted."""
    kind = INCOMPLETE


class DivergedRun(MalformedRun):
    """A run that stopped because training diverged (it has diverged.json)."""
    kind = DIVERGED


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_metrics(metrics: Any, path: str) -> Dict[str, Dict[str, list]]:
    """The metrics with every value checked: lists of numbers of equal length.

    Losses and accuracies may be NaN or infinite (JSON null is read as NaN);
    iterations must be finite numbers. The split early stopping uses
    (validate, else test) must have at least one finite loss.
    """
    if not isinstance(metrics, dict):
        raise MalformedRun(f"{path} is malformed: it holds a JSON {_json_type(metrics)}, "
                           "not an object of splits")
    if not metrics:
        raise MalformedRun(f"{path} is empty ({{}}): it holds no evaluated split")
    checked = {}
    for split, record in metrics.items():
        if not isinstance(record, dict) or not {"iteration", "loss", "accuracy"} <= set(record):
            raise MalformedRun(f"{path}: split {split!r} lacks iteration/loss/accuracy")
        values = {}
        for key in ("iteration", "loss", "accuracy"):
            column = record[key]
            if not isinstance(column, list):
                raise MalformedRun(f"{path}: split {split!r}: {key} is a JSON "
                                   f"{_json_type(column)}, not a list")
            column = [float("nan") if v is None and key != "iteration" else v
                      for v in column]
            bad = [v for v in column if not _is_number(v)
                   or (key == "iteration" and not math.isfinite(v))]
            if bad:
                raise MalformedRun(f"{path}: split {split!r}: {key} holds non-numeric "
                                   f"values (e.g. {_describe(bad[0])})")
            values[key] = column
        if len({len(column) for column in values.values()}) != 1:
            raise MalformedRun(f"{path}: split {split!r} has lists of different lengths")
        checked[split] = dict(record, **values)
    split = "validate" if checked.get("validate", {}).get("iteration") else "test"
    if not checked.get(split, {}).get("iteration"):
        raise MalformedRun(f"{path} has no validation or test evaluations to stop early "
                           "on")
    if not any(math.isfinite(loss) for loss in checked[split]["loss"]):
        raise MalformedRun(f"{path}: every {split} loss is NaN or infinite (the run "
                           "diverged?); no early-stopping point")
    return checked


def read_metrics(run_directory: str) -> Dict[str, Dict[str, list]]:
    """A run's metrics.json: split -> {'iteration', 'loss', 'accuracy'} lists.

    Args:
      run_directory: the run's directory.

    Raises:
      MalformedRun: metrics.json is missing, not valid JSON, or not metrics.
    """
    path = paths.metrics(run_directory)
    if not os.path.isfile(path):
        raise MalformedRun(f"{paths.METRICS_FILENAME} is missing")
    try:
        metrics = save_restore.read_json(path)
    except (OSError, ValueError) as error:
        raise MalformedRun(f"{paths.METRICS_FILENAME} is not valid JSON ({error})") from error
    return _check_metrics(metrics, paths.METRICS_FILENAME)


def _check_mask_counts(counts: Any) -> Dict[str, Tuple[int, int]]:
    where = f"{paths.DONE_FILENAME}: mask_counts"
    if not isinstance(counts, dict) or not counts:
        raise MalformedRun(f"{where} is malformed: expected {{layer: [surviving, all]}}, "
                           f"got {_describe(counts)}")
    checked = {}
    for name, pair in counts.items():
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(_is_number(v) and float(v).is_integer() for v in pair)
                or not 0 <= pair[0] <= pair[1] or pair[1] == 0):
            raise MalformedRun(f"{where} is malformed: layer {name!r} has "
                               f"{_describe(pair)}, expected [surviving, all] with "
                               "0 <= surviving <= all and all > 0")
        checked[str(name)] = (int(pair[0]), int(pair[1]))
    return checked


def mask_counts(run_directory: str, done: Optional[Dict[str, Any]] = None
                ) -> Dict[str, Tuple[int, int]]:
    """layer -> (surviving weights, all weights), from done.json or the masks.

    Args:
      run_directory: the run's directory.
      done: its done.json, if already read.

    Raises:
      MalformedRun: done.json's mask_counts is malformed, or the masks are
        missing or unreadable.
    """
    if done and "mask_counts" in done:
        return _check_mask_counts(done["mask_counts"])
    masks = read_network(run_directory, "masks")
    counts = {name: (int(np.count_nonzero(m)), int(m.size)) for name, m in masks.items()}
    if any(total == 0 for _, total in counts.values()):
        raise MalformedRun("masks: a layer's mask is empty")
    return counts


def read_network(run_directory: str, which: str) -> Dict[str, np.ndarray]:
    """A run's 'initial', 'final' or 'masks', or MalformedRun naming what is wrong.

    Args:
      run_directory: the run's directory.
      which: 'initial', 'final' or 'masks'.

    Raises:
      MalformedRun: the directory is missing or holds an unreadable .npy file.
    """
    try:
        return load_network(run_directory, which)
    except FileNotFoundError as error:
        raise MalformedRun(f"{which}/ is missing ({error})") from error
    except (OSError, ValueError, EOFError) as error:
        raise MalformedRun(f"{which}/ holds an unreadable .npy file, truncated or "
                           f"damaged ({error})") from error


def check_network_files(run_directory: str) -> None:
    """Checks that every .npy file in initial/, final/ and masks/ is whole.

    Cheap: each file is memory-mapped, so its header is read and its size
    checked against the array the header announces, without reading the
    weights. A folder that is absent is left to the code that needs it.

    Args:
      run_directory: the run's directory.

    Raises:
      MalformedRun: a file is truncated or its header is unreadable.
    """
    for which in NETWORKS:
        directory = getattr(paths, which)(run_directory)
        if not os.path.isdir(directory):
            continue
        for filename in sorted(os.listdir(directory)):
            if not filename.endswith(".npy") or filename.startswith("."):
                continue
            path = os.path.join(directory, filename)
            try:
                # Memory-mapped: the header is read and the size checked against
                # it, the weights are not read.
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                del array
            except (OSError, ValueError, EOFError) as error:
                raise MalformedRun(f"{which}/{filename} is unreadable, truncated or "
                                   f"damaged ({error})") from error


def _read_done(run_directory: str) -> Dict[str, Any]:
    try:
        done = save_restore.read_json(paths.done(run_directory))
    except (OSError, ValueError) as error:
        raise MalformedRun(f"{paths.DONE_FILENAME} is not valid JSON ({error})") from error
    if not isinstance(done, dict):
        raise MalformedRun(f"{paths.DONE_FILENAME} is malformed: it holds a JSON "
                           f"{_json_type(done)}, not an object")
    run_info = done.get("run_info", {})
    if not isinstance(run_info, dict):
        raise MalformedRun(f"{paths.DONE_FILENAME} is malformed: run_info is a JSON "
                           f"{_json_type(run_info)}, not an object")
    return done


def _json_type(value: Any) -> str:
    names = {list: "list", dict: "object", str: "string", bool: "boolean",
             type(None): "null", int: "number", float: "number"}
    return names.get(type(value), type(value).__name__)


def diverged_reason(record: Dict[str, Any]) -> str:
    """'diverged at iteration N (reason); excluded', from a diverged.json record.

    Args:
      record: the run's diverged.json, as read.
    """
    iteration = record.get("iteration")
    where = f" at iteration {iteration}" if iteration is not None else ""
    reason = record.get("reason") or "no reason recorded"
    return f"diverged{where} ({reason}); excluded"


def load_run(run_directory: str, trial: Optional[str] = None) -> Record:
    """One run as a record.

    Args:
      run_directory: the run's directory.
      trial: the trial's name for the record (None: from the directory above the level's).

    Returns:
      A dict with path, trial, level, experiment_name, run_id, the
      per-layer and overall fraction of weights remaining (``remaining``,
      ``remaining_{layer}``), the seeds and timing from done.json,
      ``metrics`` (split -> lists) and ``settings`` (configuration field ->
      value, for the fields that change results; a field the run predates
      at its default).

    Raises:
      MalformedRun: the run is incomplete (IncompleteRun), diverged
        (DivergedRun), or its files are missing or broken; the message says
        which file and what is wrong.
      IncompleteRun: the run has no done.json (a MalformedRun).
      DivergedRun: the run diverged (a MalformedRun).
    """
    run_directory = os.path.normpath(run_directory)
    if not runs.is_complete(run_directory):
        diverged = runs.read_diverged(run_directory)
        if diverged is not None:
            raise DivergedRun(diverged_reason(diverged))
        raise IncompleteRun(f"incomplete: no {paths.DONE_FILENAME} (still running, or "
                            "interrupted; rerunning its command finishes it)")
    done = _read_done(run_directory)
    metrics = read_metrics(run_directory)
    check_network_files(run_directory)
    counts = mask_counts(run_directory, done)
    level_dir = os.path.dirname(run_directory)
    directory_name, run_id = paths.split_run_name(os.path.basename(run_directory))
    # A run's kind is read from its directory's name (older names included: the
    # original codebase's `same_init` is a lottery run); see experiments.kinds.
    name = kinds.run_name(directory_name)
    kind = kinds.of_run(name)
    run_info = done.get("run_info", {})
    record: Record = {
        "path": run_directory,
        "trial": trial if trial is not None else _trial_name(os.path.dirname(level_dir)),
        "level": int(os.path.basename(level_dir)) if os.path.basename(level_dir).isdigit()
        else run_info.get("level"),
        "experiment_name": name,
        "run_id": run_id,
        "iterations": done.get("iterations"),
        "seconds": done.get("seconds"),
        "model_seed": done.get("model_seed"),
        "train_order_seed": done.get("train_order_seed"),
        "control": run_info.get("control",
                                name if kind is not None and kind.ticket else None),
        "metrics": metrics,
        "settings": settings_of(run_info),
    }
    kept = sum(k for k, _ in counts.values())
    total = sum(t for _, t in counts.values())
    record["remaining"] = kept / total if total else float("nan")
    for layer, (layer_kept, layer_total) in sorted(counts.items()):
        record[f"remaining_{layer}"] = layer_kept / layer_total
    return record


def settings_of(run_info: Dict[str, Any]) -> Dict[str, Any]:
    """The configuration fields of a run that change its results, as JSON values.

    Args:
      run_info: the run_info of the run's done.json.
    """
    recorded = runs.identity(run_info, ignore=config_lib.identity_ignore())
    settings = {}
    for key, default in config_lib.ExperimentConfig().identity_defaults().items():
        if key not in config_lib.identity_ignore():
            settings[key[len("config."):]] = recorded.get(key, default)
    return settings


def _trial_name(directory: str) -> Optional[str]:
    match = _TRIAL.match(os.path.basename(directory))
    return match.group(1) if match else None


def _is_run_name(name: str) -> bool:
    return bool(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name))


def find_runs(root: str) -> Tuple[List[Tuple[str, str]], List[Problem]]:
    """(trial, run directory) pairs under an experiment root, and odd directories.

    `root` may be an experiment root holding trial{N}/ directories, or a
    single trial directory.

    Args:
      root: an experiment root, or one trial's directory.

    Raises:
      FileNotFoundError: `root` is not a directory.
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
                                                   "number); left out", LAYOUT))
                continue
            for name in sorted(os.listdir(level_dir)):
                run_dir = os.path.join(level_dir, name)
                if not os.path.isdir(run_dir):
                    continue
                if not _is_run_name(name):
                    problems.append(Problem(run_dir, "not a run directory name; left out",
                                            LAYOUT))
                    continue
                kind = kinds.of_run(kinds.run_name(paths.split_run_name(name)[0]))
                if kind is not None and kind.own_layout:
                    continue  # not a run: its kind's module reads it
                runs.append((trial, run_dir))
    return runs, problems


def load_experiment(root: str) -> Tuple[List[Record], List[Problem]]:
    """Every readable run under `root`, and a Problem for each one that is not.

    Args:
      root: an experiment root, or one trial's directory.

    Returns:
      The pair (records, problems). Records are sorted by experiment name,
      level, trial and run id; problems name each incomplete, diverged or
      malformed run by path (Problem.kind says which).
    """
    found, problems = find_runs(root)
    records = []
    for trial, run_dir in found:
        try:
            records.append(load_run(run_dir, trial))
        except MalformedRun as error:
            problems.append(Problem(run_dir, str(error), error.kind))
        except Exception as error:  # noqa: BLE001 - one odd run must not stop the report
            problems.append(Problem(run_dir, f"unreadable ({type(error).__name__}: "
                                             f"{error})"))
    records.sort(key=lambda r: (r["experiment_name"], r["level"], _sortable(r["trial"]),
                                _sortable(r["run_id"])))
    return records, problems


def _sortable(value) -> Tuple[int, Any]:
    text = str(value)
    return (0, int(text)) if text.isdigit() else (1, text)


def evaluations(records: List[Record]) -> List[Record]:
    """The long table: one row per run, split and evaluated iteration.

    Args:
      records: run records, as load_experiment returns them.
    """
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
    """A run's 'initial', 'final' or 'masks' as a dict layer -> array.

    Args:
      run_directory: the run's directory.
      which: 'initial', 'final' or 'masks'.

    Raises:
      ValueError: `which` is not 'initial', 'final' or 'masks'.
    """
    if which not in ("initial", "final", "masks"):
        raise ValueError(f"which must be 'initial', 'final' or 'masks', got {which!r}.")
    return save_restore.restore_network(getattr(paths, which)(run_directory))


def load_ticket(run_directory: str) -> Dict[str, Dict[str, np.ndarray]]:
    """A run's {'initial', 'masks'} networks, checked to match layer for layer.

    Args:
      run_directory: the run's directory.

    Raises:
      MalformedRun: a network is missing or a file unreadable (truncated
        .npy), or initial/ and masks/ disagree in layers or shapes.
    """
    # The kernels: initial/ also holds the biases (runs saved before it did not).
    initial = save_restore.kernels_only(read_network(run_directory, "initial"))
    masks = read_network(run_directory, "masks")
    if set(initial) != set(masks):
        raise MalformedRun(f"initial/ and masks/ hold different layers ({sorted(initial)} "
                           f"and {sorted(masks)})")
    for layer in sorted(masks):
        if np.shape(initial[layer]) != np.shape(masks[layer]):
            raise MalformedRun(f"initial/{layer}.npy has shape {np.shape(initial[layer])} "
                               f"but masks/{layer}.npy {np.shape(masks[layer])}")
    return {"initial": initial, "masks": masks}
