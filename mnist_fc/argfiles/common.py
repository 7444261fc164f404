"""Flags and line generation shared by the control argfiles."""

import shlex
from typing import List, Optional, Sequence

from absl import flags

from lottery_ticket.foundations import paths
from lottery_ticket.mnist_fc import constants


def define_trial_flags() -> None:
    """Flags of every argfile: which trials, where, on what data, how long."""
    flags.DEFINE_integer("trials", 5, "Number of trials (the paper averages five).")
    flags.DEFINE_integer("first_trial", 1, "Number of the first trial.")
    flags.DEFINE_string("experiment_root", constants.EXPERIMENT_PATH,
                        "Directory holding the trial{N} directories.")
    flags.DEFINE_string("mnist_location", constants.MNIST_LOCATION,
                        "Directory of the MNIST IDX files.")
    flags.DEFINE_string("training_len", "{}:{}".format(*constants.TRAINING_LEN),
                        "Training length: iterations:N or epochs:N.")
    flags.DEFINE_multi_string("extra", [], "A flag added to every line, e.g. "
                              "--extra=--learning_rate=0.05 (repeatable).")


def define_control_flags() -> None:
    """The flags every control argfile takes."""
    define_trial_flags()
    flags.DEFINE_integer("first_level", 1, "First pruning level to run controls at.")
    flags.DEFINE_integer("last_level", constants.NUM_LEVELS, "Last pruning level.")
    flags.DEFINE_integer("runs_per_level", 3, "Control runs per trial and level "
                         "(the paper trains three per ticket).")
    flags.DEFINE_string("lottery_name", constants.EXPERIMENT_NAME,
                        "experiment_name of the lottery runs the controls read.")


def control_lines(experiment_name: str, trials: int, first_trial: int, first_level: int,
                  last_level: int, runs_per_level: int, experiment_root: str,
                  lottery_name: str, mnist_location: str, training_len: str,
                  presets_from: Optional[str], extra: Sequence[str] = (),
                  fixed: Sequence[str] = ()) -> List[str]:
    """One shell-quoted flag line per control run.

    Run R of trial T at level L writes {root}/trial{T}/{L}/{experiment_name}{R},
    reads the lottery run's masks at level L and, per `presets_from`, its
    initial weights at level L ('level'), at level 0 ('level0') or none (None).
    Its seed is 1000 * T + R, so every control run draws differently, and its
    batch order is the trial's (seed T), as in the lottery runs.
    """
    if first_level > last_level:
        raise ValueError(f"first_level {first_level} is after last_level {last_level}.")
    lines = []
    for trial in range(first_trial, first_trial + trials):
        trial_dir = paths.trial(experiment_root, trial)
        for level in range(first_level, last_level + 1):
            ticket = paths.run(trial_dir, level, lottery_name)
            for run_id in range(1, runs_per_level + 1):
                args = [f"--output_dir={paths.run(trial_dir, level, experiment_name, run_id)}",
                        f"--masks={paths.masks(ticket)}"]
                if presets_from == "level":
                    args.append(f"--presets={paths.initial(ticket)}")
                elif presets_from == "level0":
                    args.append(f"--presets={paths.initial(paths.run(trial_dir, 0, lottery_name))}")
                args += [f"--seed={1000 * trial + run_id}", f"--train_order_seed={trial}",
                         f"--mnist_location={mnist_location}",
                         f"--training_len={training_len}"]
                lines.append(shlex.join(args + list(fixed) + list(extra)))
    return lines


def print_control_lines(experiment_name: str, presets_from: Optional[str],
                        fixed: Sequence[str] = ()) -> None:
    """Prints the lines for the parsed flags."""
    f = flags.FLAGS
    print("\n".join(control_lines(
        experiment_name, f.trials, f.first_trial, f.first_level, f.last_level,
        f.runs_per_level, f.experiment_root, f.lottery_name, f.mnist_location,
        f.training_len, presets_from, f.extra, fixed)))
