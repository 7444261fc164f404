"""Run identity: the one owner of ``done.json`` and of what makes two runs the same.

A run directory is complete exactly when its ``done.json`` exists; that file is
written last, atomically. Its schema::

    {"format_version": 2,
     "run_info": {"config": {"data": {...}, "model": {...}, "training": {...},
                             "pruning": {...}},
                  "seed": ..., "experiment_name": ..., "level": ..., ...},
     "iterations": ..., "seconds": ..., "final": {...}, "mask_counts": {...},
     ... provenance (tensorflow, python, kernel settings)}

Runs written before format 2 have no ``format_version`` and keep their
configuration flat in ``run_info.config`` (and ``prune_percents`` beside it);
``identity`` reads both shapes into the same flat settings, so an experiment
made by an older version resumes under a newer one.

Resuming compares the settings asked for now with the ones recorded. A setting
that a run does not record was added to the library after the run was made, so
it is taken at its default: adding a setting with a default never makes an
existing experiment refuse to resume, while giving it another value does.
"""

import glob
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

import numpy as np

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore
# Locking lives in its own module; runs.lock and runs.LockedError stay its public names.
from lottery_ticket.foundations.locks import LockedError, lock, remove_stale_holder  # noqa: F401

logger = logging.getLogger("lottery_ticket")

FORMAT_VERSION = 2
DONE_FILENAME = paths.DONE_FILENAME
DIVERGED_FILENAME = "diverged.json"
# The run marker and lock files are named in paths (the run layout); kept here too.
MARKER_FILENAME = paths.MARKER_FILENAME
LOCK_FILE = paths.LOCK_FILE
LOCK_FILENAME = paths.LOCK_FILENAME
# Files and directories a run writes; clearing an incomplete run removes these
# and nothing else in its directory.
RUN_CONTENTS = ("initial", "final", "masks", "summaries", paths.METRICS_FILENAME,
                DIVERGED_FILENAME)
# Format 1 kept this setting beside the configuration instead of inside it.
_FORMAT1_CONFIG_KEYS = ("prune_percents",)

Identity = Dict[str, Any]


def is_complete(run_directory: str) -> bool:
    """Whether a run finished: its done.json exists.

    Args:
      run_directory: the run's directory.
    """
    return os.path.isfile(paths.done(run_directory))


def read_done(run_directory: str) -> Dict[str, Any]:
    """A complete run's done.json.

    Args:
      run_directory: the run's directory.

    Raises:
      FileNotFoundError: the run is not complete.
      ValueError: done.json is not a JSON object.
    """
    path = paths.done(run_directory)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_directory} is not a complete run: it has no "
                                f"{DONE_FILENAME}.")
    try:
        done = save_restore.read_json(path)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}).") from error
    if not isinstance(done, dict):
        raise ValueError(f"{path} holds a {type(done).__name__}, not a JSON object.")
    return done


def write_done(run_directory: str, record: Mapping[str, Any]) -> None:
    """Writes done.json (last of a run's files) with the format version.

    The file appears atomically and never replaces another: if a done.json
    appeared meanwhile (another process finished this run), FileExistsError.

    Args:
      run_directory: the run's directory.
      record: the JSON-serializable record of the run.

    Raises:
      FileExistsError: another process completed the run meanwhile.
      save_restore.DiskFullError: the disk is full.
    """
    path = paths.done(run_directory)
    text = json.dumps(dict(record, format_version=FORMAT_VERSION), indent=1, sort_keys=True,
                      default=save_restore.json_default)
    try:
        handle, temporary = tempfile.mkstemp(dir=run_directory, prefix=f".{DONE_FILENAME}.",
                                             suffix=".tmp")
    except OSError as error:
        if save_restore.is_disk_full(error):
            raise save_restore.disk_full_error(path) from error
        raise
    try:
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            if save_restore.is_disk_full(error):
                raise save_restore.disk_full_error(path) from error
            raise
        save_restore.apply_umask(temporary)
        try:
            os.link(temporary, path)  # unlike a rename, never replaces a file
        except FileExistsError:
            raise FileExistsError(
                f"{run_directory} was completed by another process while this one ran "
                "(two runners without a common lock); its done.json is kept, but its "
                "other files may have been replaced: check that run, or delete it and "
                "run it again.") from None
    finally:
        os.remove(temporary)


def write_diverged(run_directory: str, record: Mapping[str, Any]) -> None:
    """Records that a run diverged: it stays incomplete and is never pruned from.

    Args:
      run_directory: the run's directory.
      record: JSON-serializable facts about the divergence (iteration, what).
    """
    save_restore.write_json(os.path.join(run_directory, DIVERGED_FILENAME),
                            dict(record, format_version=FORMAT_VERSION))


def read_diverged(run_directory: str) -> Optional[Dict[str, Any]]:
    """The divergence record of a run, or None if it has none (or it is unreadable).

    Args:
      run_directory: the run's directory.
    """
    path = os.path.join(run_directory, DIVERGED_FILENAME)
    if not os.path.isfile(path):
        return None
    try:
        record = save_restore.read_json(path)
    except (OSError, ValueError):
        return {"reason": f"{DIVERGED_FILENAME} is unreadable"}
    return record if isinstance(record, dict) else {"reason": str(record)}


class DivergedError(RuntimeError):
    """Training produced a non-finite loss or weights: the run is recorded as diverged.

    Args:
      output_dir: the run directory.
      iteration: the iteration at which the loss or weights stopped being finite.
      what: what became non-finite (for the message).
    """

    def __init__(self, output_dir: str, iteration: int, what: str):
        self.output_dir, self.iteration, self.what = output_dir, iteration, what
        super().__init__(
            f"the run in {output_dir} diverged at iteration {iteration}: {what}. It is "
            f"recorded as diverged ({DIVERGED_FILENAME}), not complete, and nothing "
            "is pruned from it; a smaller --learning_rate usually helps.")


def _jsonable(value: Any) -> Any:
    """The value as JSON would give it back (tuples become lists, numpy to Python)."""
    return json.loads(json.dumps(value, default=save_restore.json_default))


def _config_identity(config: Mapping[str, Any]) -> Identity:
    """'config.{field}' for a configuration, nested by concern or flat (format 1)."""
    flat = {}
    for key, value in config.items():
        # In format 2 each concern (data, model, ...) is a mapping of fields; field
        # names are unique across concerns, so the concern is left out of the key.
        if isinstance(value, Mapping) and key in ("data", "model", "training", "pruning"):
            for field, field_value in value.items():
                flat[f"config.{field}"] = field_value
        else:
            flat[f"config.{key}"] = value
    return flat


def identity(run_info: Mapping[str, Any], ignore: Iterable[str] = ()) -> Identity:
    """The flat settings of a run, as runs are compared on them.

    'config.{field}' for each configuration field, and the other run_info keys (seed,
    experiment_name, control, ...) as they are.

    Args:
      run_info: a done.json's run_info (any format), or one about to be written.
      ignore: keys left out (settings that do not change a run's results, such
        as where the data lives or how many levels a trial has).

    Returns:
      key -> JSON value. Mapping values (e.g. prune_percents) are kept whole,
      so a layer added or left out is a difference too.
    """
    info = _jsonable(dict(run_info))
    flat: Identity = {}
    for key, value in info.items():
        if key == "config" and isinstance(value, Mapping):
            flat.update(_config_identity(value))
        elif key in _FORMAT1_CONFIG_KEYS:
            flat[f"config.{key}"] = value
        else:
            flat[key] = value
    ignored = set(ignore)
    return {key: value for key, value in flat.items() if key not in ignored}


_ABSENT = object()


def differences(recorded: Mapping[str, Any], asked: Mapping[str, Any],
                defaults: Optional[Mapping[str, Any]] = None
                ) -> Dict[str, Tuple[Any, Any]]:
    """Settings asked for now that differ from those a run recorded.

    Args:
      recorded: identity() of the saved run.
      asked: identity() of the run asked for now.
      defaults: identity keys -> default values. A key the saved run does not
        record is compared at its default: the run predates the setting.

    Returns:
      key -> (recorded value, asked value) for each difference; a key neither
      recorded nor defaulted shows as recorded None.
    """
    defaults = _jsonable(dict(defaults or {}))
    asked = _jsonable(dict(asked))
    found = {}
    for key, value in asked.items():
        old = recorded.get(key, defaults.get(key, _ABSENT))
        if old is _ABSENT or old != value:
            found[key] = (None if old is _ABSENT else old, value)
    return found


def _describe(key: str, old: Any, new: Any) -> str:
    """'key: saved X, asked Y'; for the data, narrowed to the entries that differ,
    so the message names the file that changed."""
    if key.split(".")[0] == "data" and isinstance(old, Mapping) and isinstance(new, Mapping):
        parts = [_describe(f"{key}.{name}", old.get(name), new.get(name))
                 for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
        return "; ".join(parts)
    return f"{key}: saved {old!r}, asked {new!r}"


def check_same_run(run_directory: str, asked: Mapping[str, Any],
                   defaults: Optional[Mapping[str, Any]] = None,
                   ignore: Iterable[str] = ()) -> None:
    """Raises ValueError naming each setting in which a complete run differs.

    Args:
      run_directory: a complete run.
      asked: the run_info (or identity) asked for now.
      defaults: as in differences() and identity().
      ignore: as in differences() and identity().

    Raises:
      ValueError: naming each setting in which the complete run differs.
    """
    recorded = identity(read_done(run_directory).get("run_info", {}), ignore)
    found = differences(recorded, identity(asked, ignore), defaults)
    if found:
        details = "; ".join(_describe(key, old, new) for key, (old, new) in sorted(found.items()))
        raise ValueError(
            f"{run_directory} is a complete run made with other settings ({details}). "
            "Reusing it would mix two experiments: use another output directory, or "
            "the settings it was made with.")


def load_complete_run(run_directory: str, asked: Mapping[str, Any],
                      defaults: Optional[Mapping[str, Any]] = None,
                      ignore: Iterable[str] = ()
                      ) -> Optional[Tuple[save_restore.Network, save_restore.Network, save_restore.Network]]:
    """(initial, final, masks) of a complete run made with `asked`, or None if incomplete.

    Args:
      run_directory: the run's directory.
      asked: the settings the caller would train with (compared with done.json's).
      defaults: values of settings that older done.json files do not record.
      ignore: settings that may differ.

    Raises:
      ValueError: the complete run was made with other settings; the message
        names each one (see check_same_run).
    """
    if not is_complete(run_directory):
        return None
    check_same_run(run_directory, asked, defaults, ignore)
    remove_stale_holder(run_directory)
    # Kernels only, as a run returns them (initial/ and final/ also hold biases).
    return (save_restore.kernels_only(save_restore.restore_network(paths.initial(run_directory))),
            save_restore.kernels_only(save_restore.restore_network(paths.final(run_directory))),
            save_restore.restore_network(paths.masks(run_directory)))


def mark_started(run_directory: str) -> None:
    """Marks a directory as a run of this project (before any of its files).

    Args:
      run_directory: the run's directory.
    """
    os.makedirs(run_directory, exist_ok=True)
    marker = os.path.join(run_directory, MARKER_FILENAME)
    if not os.path.exists(marker):
        save_restore.write_bytes_atomically(marker, b"a lottery_ticket run\n")


def remove_temporaries(directory: str) -> None:
    """Removes the .*.tmp files an interrupted atomic write left under `directory`.

    Args:
      directory: the directory searched (recursively).
    """
    for path in glob.glob(os.path.join(glob.escape(directory), "**", ".*.tmp"),
                          recursive=True):
        if os.path.isfile(path):
            os.remove(path)


def _only_run_files(run_directory: str) -> bool:
    """Whether a directory holds nothing but names a run writes (necessary, but not
    enough, for it to be a run of a version before the marker)."""
    allowed = set(RUN_CONTENTS) | {LOCK_FILE, LOCK_FILENAME}
    for name in os.listdir(run_directory):
        path = os.path.join(run_directory, name)
        if name.endswith(".tmp"):
            continue
        if name not in allowed:
            return False
        if name in ("initial", "final", "masks"):
            if not os.path.isdir(path) or any(
                    not (entry.endswith(".npy") or entry.endswith(".tmp"))
                    for entry in os.listdir(path)):
                return False
        if name == "summaries":
            if not os.path.isdir(path) or any(not entry.startswith("events.out.tfevents")
                                              for entry in os.listdir(path)):
                return False
    return True


def _npy_shapes(directory: str) -> Optional[Dict[str, Tuple[int, ...]]]:
    """layer -> shape of each {layer}.npy in a directory, read from the headers
    alone; None if any of them is not a readable .npy file."""
    shapes = {}
    for name in os.listdir(directory):
        if not name.endswith(".npy") or name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    return None
                shape, _, _ = read_header(f)
        except (OSError, ValueError, EOFError, SyntaxError):
            return None
        shapes[name[:-4]] = tuple(shape)
    return shapes


def _is_metrics_record(path: str) -> bool:
    """Whether a file is a metrics.json as runs write it: split -> {"iteration",
    "loss", "accuracy"} lists (an interrupted run may have written none yet)."""
    try:
        metrics = save_restore.read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and all(
        isinstance(record, dict) and set(record) == {"iteration", "loss", "accuracy"}
        and all(isinstance(values, list) for values in record.values())
        for record in metrics.values())


def _related_layer_shapes(run_directory: str) -> Iterator[Dict[str, Tuple[int, ...]]]:
    """The layer shapes of the complete runs related to a run directory: the runs
    of the same name at the trial's other levels, and the other runs at its level
    (the records an interrupted level of an older version sits among)."""
    run_directory = os.path.abspath(run_directory)
    level_dir = os.path.dirname(run_directory)
    trial = os.path.dirname(level_dir)
    if not os.path.basename(level_dir).isdigit():
        return
    name = os.path.basename(run_directory)
    candidates = [os.path.join(trial, level, name) for level in sorted(os.listdir(trial))
                  if level.isdigit()]
    candidates += [os.path.join(level_dir, other) for other in sorted(os.listdir(level_dir))]
    for candidate in candidates:
        if candidate == run_directory or not is_complete(candidate):
            continue
        initial = paths.initial(candidate)
        shapes = _npy_shapes(initial) if os.path.isdir(initial) else None
        if shapes:  # runs since biases were saved hold them too; masks cover kernels only
            shapes = {layer: shape for layer, shape in shapes.items()
                      if save_restore.is_kernel(layer)}
        try:
            counts = read_done(candidate).get("mask_counts")
        except (OSError, ValueError):
            continue
        if not shapes or (isinstance(counts, dict) and set(counts) != set(shapes)):
            continue
        yield shapes


def _is_run_of_older_version(run_directory: str) -> bool:
    """Whether a directory without the marker provably holds a run this library
    made before runs were marked (format 1), interrupted: nothing but run files,
    a metrics.json in the library's form, and either this library's divergence
    record or weight files whose layers and shapes are those of a complete run
    of the same trial. Anything less is not deleted."""
    if not _only_run_files(run_directory):
        return False
    metrics = paths.metrics(run_directory)
    if os.path.exists(metrics) and not _is_metrics_record(metrics):
        return False
    networks = {}
    for name in ("initial", "masks", "final"):
        directory = os.path.join(run_directory, name)
        if os.path.isdir(directory):
            shapes = _npy_shapes(directory)
            if shapes is None:
                return False
            networks[name] = shapes
    diverged = os.path.join(run_directory, DIVERGED_FILENAME)
    if os.path.exists(diverged):
        try:
            record = save_restore.read_json(diverged)
        except (OSError, ValueError):
            return False
        return (isinstance(record, dict) and {"iteration", "reason"} <= set(record)
                and isinstance(record.get("run_info"), dict))
    if not networks.get("initial") and not networks.get("masks"):
        return False
    for shapes in _related_layer_shapes(run_directory):
        # final/ is written layer by layer at the end: an interruption may leave part.
        if all(network.items() <= shapes.items() if name == "final" else network == shapes
               for name, network in networks.items()):
            return True
    return False


def clear_incomplete(run_directory: str) -> None:
    """Removes what an interrupted run left, so it can be redone from its start.

    Only the run's own files (RUN_CONTENTS) and leftover temporaries are
    removed, and only in a directory a run of this project started: it holds
    the marker written at run start or, for runs of versions before the
    marker, its content proves it (_is_run_of_older_version). Anything else
    is refused, not deleted.

    Args:
      run_directory: the run's directory.

    Raises:
      FileExistsError: the run is complete (complete runs are never
        overwritten), or the directory holds run files that no run of this
        project started there.
    """
    if is_complete(run_directory):
        raise FileExistsError(
            f"the run in {run_directory!r} is already complete (it has "
            f"{DONE_FILENAME}); it is never overwritten. Choose another "
            "output directory, or delete that run yourself to redo it.")
    leftovers = [name for name in RUN_CONTENTS
                 if os.path.exists(os.path.join(run_directory, name))]
    marked = (os.path.exists(os.path.join(run_directory, MARKER_FILENAME))
              or _is_run_of_older_version(run_directory))
    if leftovers and not marked:
        raise FileExistsError(
            f"{run_directory} holds {', '.join(leftovers)} but no run of this project "
            f"started there (it has no {MARKER_FILENAME}, and they are not an interrupted "
            "run of an earlier version beside its trial's records), so nothing is "
            "deleted. Move those files away or choose another output directory.")
    if leftovers:
        logger.warning("%s holds an incomplete run (%s); redoing it from the start.",
                       run_directory, ", ".join(leftovers))
    for name in leftovers:
        target = os.path.join(run_directory, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.remove(target)
    if os.path.isdir(run_directory):
        remove_temporaries(run_directory)


def complete_runs(directory: str) -> list:
    """Paths, relative to `directory`, of the done.json of every complete run under it.

    Args:
      directory: any directory (an experiment, a trial).
    """
    found = []
    for root, _, files in os.walk(directory):
        if DONE_FILENAME in files:
            found.append(os.path.relpath(os.path.join(root, DONE_FILENAME), directory))
    return sorted(found)


def mask_counts(masks: Mapping[str, np.ndarray]) -> Dict[str, Tuple[int, int]]:
    """layer -> [surviving weights, all weights], as done.json records them.

    Args:
      masks: layer -> mask.
    """
    return {name: [int(np.count_nonzero(mask)), int(np.size(mask))]
            for name, mask in masks.items()}
