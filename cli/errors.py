"""One error contract for every entry point: a bad input is one `error:` line, exit 2.

| what | exit status |
| --- | --- |
| bad input (flag, value, file or path), a full disk, a download that failed, a directory in use by another runner | 2 |
| the run diverged (recorded as such, nothing pruned from it) | 3 |
| interrupted (Ctrl-C, SIGTERM): rerunning the same command resumes | 130 |

LOTTERY_TICKET_TRACEBACK=1 shows the traceback behind an `error:` line, for
telling a library bug (which can raise ValueError too) from bad input.
"""

import os
import signal
import sys
import traceback
import threading
from typing import Any, Callable

from lottery_ticket.datasets.download import DownloadError
from lottery_ticket.foundations import runs

# Errors that mean "the input is wrong": shown as one clear message, not a traceback.
# OSError covers paths that cannot be made (under a file, a name too long) and full disks;
# a failed download names each mirror tried and where to put the file by hand.
USER_ERRORS = (ValueError, OSError, runs.LockedError, DownloadError)
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130


def _interrupted(signum, frame):
    raise KeyboardInterrupt()


def _say(error: BaseException) -> None:
    if os.environ.get("LOTTERY_TICKET_TRACEBACK"):
        traceback.print_exc()
    print(f"error: {error}", file=sys.stderr)


def run_cli(main: Callable[[], Any]) -> Any:
    """Calls main() under the contract above, printing one line instead of a traceback."""
    # SIGTERM (a batch runner or a cluster stopping the job) ends like Ctrl-C.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupted) if main_thread else None
    try:
        return main()
    except USER_ERRORS as error:
        _say(error)
        sys.exit(EXIT_USER_ERROR)
    except runs.DivergedError as error:
        _say(error)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept and the interrupted one is incomplete; "
              "rerunning the same command resumes.", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
