"""Command line for one trial of the lottery ticket experiment on LeNet-300-100.

    python -m lottery_ticket.mnist_fc.runners.lottery_experiment \\
        --output_dir=DIR --mnist_location=DIR --training_len=iterations:2000 --levels=3

Rerunning the same command resumes after the last completed level. Flags are
generated from the configuration (see --help); `--iterations` is an alias of
`--levels`, as in the original codebase."""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "lottery_experiment")


if __name__ == "__main__":
    main()
