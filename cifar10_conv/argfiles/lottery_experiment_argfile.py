"""Prints one lottery_experiment flag line per trial.

    python -m lottery_ticket.cifar10_conv.argfiles.lottery_experiment_argfile \\
        --model=conv4 --trials=5 --experiment_root=DIR --data_location=DIR > conv4.args

--model (default conv2) picks the model's defaults (its --training_len, written
on every line) and adds --model to every line. Trial N writes to
{experiment_root}/trial{N} and uses seed N.
"""

import sys
from typing import List, Optional, Sequence, Tuple

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cli import argfiles


def split_model(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """(the --model named in argv or the default, the other arguments).

    Exits with status 2 and one error line for a model the family has no defaults for.
    """
    model, rest, index = constants.DEFAULT["model"], [], 0
    argv = list(argv)
    while index < len(argv):
        argument = argv[index]
        if argument == "--model" and index + 1 < len(argv):
            model, index = argv[index + 1], index + 2
            continue
        if argument.startswith("--model="):
            model = argument.partition("=")[2]
        else:
            rest.append(argument)
        index += 1
    if model not in constants.CONFIGS:
        print(f"error: --model={model} is not one of this family's models "
              f"({', '.join(constants.CONFIGS)}).", file=sys.stderr)
        sys.exit(2)
    return model, rest


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Defines the flags, parses argv (default sys.argv) and prints the lines."""
    model, rest = split_model(sys.argv[1:] if argv is None else argv)
    argfiles.lottery_main(constants.FAMILY.for_model(model),
                          rest + [f"--extra=--model={model}"])


if __name__ == "__main__":
    main()
