"""Running a function as a command line with Fire, with clear errors."""

import sys
from typing import Callable

import fire

# Errors that mean "the input is wrong": shown as one clear message, not a traceback.
USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError)


def run_cli(main: Callable) -> None:
    """Runs `main` with Fire; a user error exits with status 2 and its message."""
    try:
        fire.Fire(main)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
