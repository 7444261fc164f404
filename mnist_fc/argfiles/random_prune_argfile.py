"""Prints one random_prune flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.random_prune_argfile \\
        --trials=5 --last_level=30 --experiment_root=DIR > random_prune.args

Each line reads the ticket's masks at its level (for the counts) and the
trial's level-0 initial weights.
"""

from typing import List

from absl import app

from lottery_ticket.mnist_fc.argfiles import common

common.define_control_flags()


def main(argv: List[str]) -> None:
    """Prints the lines for the parsed flags."""
    del argv
    common.print_control_lines("random_prune", "level0")


if __name__ == "__main__":
    app.run(main)
