"""Where an experiment's results live on disk.

Layout (the trial, level and run directories with initial/, final/, masks/ and
summaries/ are the original codebase's; the rest was added here)::

    {experiment_root}/trial{N}/{level}/{experiment_name}{run_id}/
        initial/{layer}.npy    weights before training (and {layer}.bias.npy,
                               each bias, in runs made since biases are saved)
        final/{layer}.npy      weights after training (and {layer}.bias.npy)
        masks/{layer}.npy      0/1 masks the run trained with
        rewind{K}/{layer}.npy  weights at iteration K (level 0 of a trial with
                               rewind_iteration=K: what later levels reset to)
        metrics.json           loss and accuracy per evaluated split
        summaries/             TensorBoard event files
        done.json              written last: the run is complete

A run directory without ``done.json`` is incomplete, whatever else it holds
(``runs.is_complete``; ``foundations.runs`` owns that file's schema).
"""

import os
import re
from typing import Tuple, Union

DONE_FILENAME = "done.json"
METRICS_FILENAME = "metrics.json"
# Written first, when a run starts: only a directory holding it may be cleared.
MARKER_FILENAME = ".lottery_ticket_run"
# A trial's or run's lock file (flock'ed, never written) and the name of its holder.
LOCK_FILE = ".lock"
LOCK_FILENAME = ".locked_by"

_EXPERIMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*[A-Za-z_]$|^[A-Za-z_]$")
_RUN_ID = re.compile(r"^[0-9]*$")
_REWIND = re.compile(r"^rewind[0-9]+$")


def trial(parent_directory: str, trial_name: Union[int, str]) -> str:
    """Directory of one trial: ``{parent_directory}/trial{trial_name}``.

    Args:
      parent_directory: the experiment's directory.
      trial_name: the trial's number or name.
    """
    return os.path.join(parent_directory, f"trial{trial_name}")


def run(parent_directory: str, level: int, experiment_name: str = "lottery",
        run_id: Union[int, str] = "") -> str:
    """Directory of one run: ``{parent}/{level}/{experiment_name}{run_id}``.

    ``experiment_name`` must not end in a digit and ``run_id`` must be digits
    (or empty), so that a directory name splits back into the two unambiguously.

    Args:
      parent_directory: the trial's directory.
      level: the pruning level.
      experiment_name: the kind of run ('lottery', 'reinit', ...); no trailing digit.
      run_id: digits telling apart runs of one kind at one level, or ''.

    Raises:
      ValueError: an `experiment_name` that is not letters, digits and '_' ending in a
        non-digit, a `run_id` that is not digits, or a negative level.
    """
    if not _EXPERIMENT_NAME.match(experiment_name):
        raise ValueError(
            f"experiment_name {experiment_name!r} must be letters, digits and '_', "
            "start with a letter and not end in a digit (the run id follows it).")
    run_id = str(run_id)
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run_id {run_id!r} must be a non-negative integer or ''.")
    if int(level) < 0:
        raise ValueError(f"level must be >= 0, got {level}.")
    return os.path.join(parent_directory, str(int(level)), f"{experiment_name}{run_id}")


def split_run_name(name: str) -> Tuple[str, str]:
    """Splits a run directory's name into (experiment_name, run_id).

    Args:
      name: a run directory's base name, e.g. 'reinit2'.

    Returns:
      The pair (experiment_name, run_id), run_id '' where the name has no digits at its end.
    """
    match = re.match(r"^(.*?)([0-9]*)$", name)
    return match.group(1), match.group(2)


def initial(run_directory: str) -> str:
    """Directory of a run's initial weights.

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, "initial")


def final(run_directory: str) -> str:
    """Directory of a run's final weights.

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, "final")


def masks(run_directory: str) -> str:
    """Directory of a run's masks.

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, "masks")


def rewind(run_directory: str, iteration: int) -> str:
    """Directory of a run's weights at `iteration` (``rewind{iteration}/``).

    The snapshot that late resetting (rewinding) resets later levels to.

    Args:
      run_directory: the run's directory.
      iteration: the snapshot's iteration K.

    Raises:
      ValueError: `iteration` is not a whole number >= 1.
    """
    if int(iteration) != iteration or int(iteration) < 1:
        raise ValueError(f"a rewind snapshot is taken at an iteration >= 1, got {iteration!r}.")
    return os.path.join(run_directory, f"rewind{int(iteration)}")


def is_rewind(name: str) -> bool:
    """Whether a directory name is a rewind snapshot's (``rewind{K}``).

    Args:
      name: a directory's base name.
    """
    return bool(_REWIND.match(name))


def metrics(run_directory: str) -> str:
    """A run's metrics file (JSON).

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, METRICS_FILENAME)


def summaries(run_directory: str) -> str:
    """Directory of a run's TensorBoard summaries.

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, "summaries")


def done(run_directory: str) -> str:
    """A run's completion marker, written last.

    Args:
      run_directory: the run's directory.
    """
    return os.path.join(run_directory, DONE_FILENAME)


def log(run_directory: str) -> str:
    """Where a batch runner writes the output of the process that made a run.

    Args:
      run_directory: the run's directory.
    """
    return run_directory.rstrip(os.sep) + ".log"
