"""Runs a runner once per flag line of an argfile: in parallel, resumable.

    python -m lottery_ticket.mnist_fc.runners.argfile_runner \\
        --runner=lottery_experiment --argfile=lottery_experiment_argfile \\
        --argfile_flags="--trials=5 --experiment_root=DIR" --workers=2

See lottery_ticket.cli.argfile_runner; short names are this family's modules.
"""

from lottery_ticket.cli import runners
from lottery_ticket.mnist_fc import constants

COMMAND, main = runners.entry_point(constants.FAMILY, "argfile_runner")


if __name__ == "__main__":
    main()
