"""Command line for one one-shot pruning run of a lottery trial on LeNet-300-100.

    python -m lottery_ticket.mnist_fc.runners.oneshot \\
        --output_dir=results/lottery/trial1/3/oneshot --seed=1 --mnist_location=DIR \\
        --training_len=iterations:2000

Prunes the trial's trained level 0 (results/lottery/trial1/0/lottery, trained
there first if missing) straight to the weights iterative pruning keeps at
level 3, resets the survivors and trains. Rerunning reads a finished run back.
"""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "oneshot")


if __name__ == "__main__":
    main()
