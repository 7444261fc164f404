"""Prints one reinitialize flag line per control run.

    python -m lottery_ticket.mnist_fc.argfiles.reinitialize_argfile --mode=reuse \\
        --trials=5 --last_level=30 --experiment_root=DIR > reuse.args

Runs land in {root}/trial{T}/{L}/{mode}{R}, beside the lottery run they control.
"""

from typing import List

from absl import app
from absl import flags

from lottery_ticket.foundations import controls
from lottery_ticket.mnist_fc.argfiles import common

common.define_control_flags()
flags.DEFINE_enum("mode", "reinit", list(controls.REINITIALIZE_MODES),
                  "reinit: fresh draw; reuse: sample the ticket's initial values; "
                  "reuse_sign: reuse keeping each weight's sign.")


def main(argv: List[str]) -> None:
    """Prints the lines for the parsed flags."""
    del argv
    mode = flags.FLAGS.mode
    common.print_control_lines(mode, None if mode == "reinit" else "level",
                               fixed=[f"--mode={mode}"])


if __name__ == "__main__":
    app.run(main)
