"""One error contract for every entry point: a bad input is one `error:` line, exit 2."""

import sys
from typing import Any, Callable

# Errors that mean "the input is wrong": shown as one clear message, not a traceback.
USER_ERRORS = (ValueError, FileExistsError, FileNotFoundError)


def run_cli(main: Callable[[], Any]) -> Any:
    """Calls main(); a user error prints `error: <message>` to stderr and exits 2."""
    try:
        return main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

