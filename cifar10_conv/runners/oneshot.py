"""Command line for one one-shot pruning run of a conv lottery trial.

    python -m lottery_ticket.cifar10_conv.runners.oneshot --model=conv4 \\
        --output_dir=results/conv4/trial1/3/oneshot --seed=1 --data_location=DIR

Prunes the trial's trained level 0 (results/conv4/trial1/0/lottery, trained
there first if missing) straight to the weights iterative pruning keeps at
level 3, resets the survivors and trains. Give the trial's --model (and any
setting it was run with): level 0 is checked against them.
"""

from lottery_ticket.cli import runners
from lottery_ticket.cifar10_conv import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "oneshot")


if __name__ == "__main__":
    main()
