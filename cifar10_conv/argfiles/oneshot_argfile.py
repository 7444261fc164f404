"""Prints one oneshot flag line per trial and level.

    python -m lottery_ticket.cifar10_conv.argfiles.oneshot_argfile --model=conv4 \\
        --trials=5 --oneshot_levels=3,7,12 --experiment_root=DIR --data_location=DIR

--model (default conv2) picks the model's defaults and adds --model to every
line, as the lottery argfile does. Trial N, level k writes
{experiment_root}/trial{N}/{k}/oneshot with seed N.
"""

import sys
from typing import Optional, Sequence

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cifar10_conv.argfiles.lottery_experiment_argfile import split_model
from lottery_ticket.cli import argfiles


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    model, rest = split_model(sys.argv[1:] if argv is None else argv)
    argfiles.oneshot_main(constants.FAMILY.for_model(model),
                          rest + [f"--extra=--model={model}"])


if __name__ == "__main__":
    main()
