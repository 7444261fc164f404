"""Runs a runner once per flag line of an argfile: in parallel, resumable.

    python -m lottery_ticket.mnist_fc.runners.argfile_runner \\
        --runner=lottery_experiment --argfile=lottery_experiment_argfile \\
        --argfile_flags="--trials=5 --experiment_root=DIR" --workers=2

See lottery_ticket.cli.argfile_runner; short names are this family's modules.
"""

from lottery_ticket.cli import argfile_runner
from lottery_ticket.mnist_fc import constants

COMMAND = argfile_runner.command(constants.FAMILY)


def main(argv=None) -> None:
    """Runs the command line (default sys.argv); --help lists every flag."""
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
