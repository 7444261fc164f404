"""Prints one lottery_experiment flag line per trial.

    python -m lottery_ticket.mnist_fc.argfiles.lottery_experiment_argfile \\
        --trials=5 --levels=30 --experiment_root=DIR > lottery.args

Trial N writes to {experiment_root}/trial{N} and uses seed N.
"""

import shlex
from typing import List, Sequence

from absl import app
from absl import flags

from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc.argfiles import common

FLAGS = flags.FLAGS
common.define_trial_flags()
flags.DEFINE_integer("levels", constants.NUM_LEVELS, "Pruning levels after level 0.")


def lottery_lines(trials: int, first_trial: int, levels: int, experiment_root: str,
                  mnist_location: str, training_len: str,
                  extra: Sequence[str] = ()) -> List[str]:
    """The flag lines, one per trial, quoted for a shell."""
    lines = []
    for trial in range(first_trial, first_trial + trials):
        args = [f"--output_dir={constants.trial(experiment_root, trial)}",
                f"--seed={trial}", f"--iterations={levels}",
                f"--mnist_location={mnist_location}", f"--training_len={training_len}"]
        lines.append(shlex.join(args + list(extra)))
    return lines


def main(argv: List[str]) -> None:
    """Prints the lines for the parsed flags."""
    del argv
    print("\n".join(lottery_lines(FLAGS.trials, FLAGS.first_trial, FLAGS.levels,
                                  FLAGS.experiment_root, FLAGS.mnist_location,
                                  FLAGS.training_len, FLAGS.extra)))


if __name__ == "__main__":
    app.run(main)
