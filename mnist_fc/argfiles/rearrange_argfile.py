"""Prints one rearrange flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.rearrange_argfile \\
        --trials=5 --last_level=30 --experiment_root=DIR > rearrange.args
"""

from typing import List

from absl import app

from lottery_ticket.mnist_fc.argfiles import common

common.define_control_flags()


def main(argv: List[str]) -> None:
    """Prints the lines for the parsed flags."""
    del argv
    common.print_control_lines("rearrange", "level")


if __name__ == "__main__":
    app.run(main)
