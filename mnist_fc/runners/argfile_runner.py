"""Runs a runner once per flag line of an argfile: in parallel, resumable.

    python -m lottery_ticket.mnist_fc.runners.argfile_runner \\
        --runner=lottery_experiment --argfile=lottery_experiment_argfile \\
        --argfile_flags="--trials=5 --experiment_root=DIR" --workers=2

`--argfile` is an argfile module of lottery_ticket.mnist_fc.argfiles (its name,
or a .py path), run with `--argfile_flags`, or a text file holding such
output. Lines already done are skipped; each line logs to {output_dir}.log.
Exit status: 0 all done, 1 some line failed, 130 interrupted.
"""

import importlib.util
import logging
import os
import shlex
import subprocess
import sys

from lottery_ticket.foundations import batch
from lottery_ticket.mnist_fc.runners import common

RUNNERS = ("lottery_experiment", "train", "reinitialize", "rearrange", "random_prune")


def _module(name: str, package: str) -> str:
    """A short name within `package`, or a full module path."""
    if "." not in name and importlib.util.find_spec(f"{package}.{name}") is not None:
        return f"{package}.{name}"
    if importlib.util.find_spec(name) is None:
        raise ValueError(f"no module {name!r} (nor {package}.{name}).")
    return name


def read_argfile(argfile: str, argfile_flags: str = "") -> str:
    """The flag lines of an argfile module or .py script, or of a text file."""
    if argfile.endswith(".py") or not os.path.exists(argfile):
        command = ([sys.executable, argfile] if argfile.endswith(".py") else
                   [sys.executable, "-m", _module(argfile, "lottery_ticket.mnist_fc.argfiles")])
        result = subprocess.run(command + shlex.split(argfile_flags), capture_output=True,
                                text=True, check=False)
        if result.returncode != 0:
            raise ValueError(f"argfile {argfile} failed (exit {result.returncode}):\n"
                             f"{result.stderr.strip()}")
        return result.stdout
    if argfile_flags:
        raise ValueError(f"--argfile_flags only applies to argfile scripts; {argfile} "
                         "is a text file of lines.")
    with open(argfile, encoding="utf-8") as f:
        return f.read()


def main(runner: str, argfile: str, workers: int = 1, argfile_flags: str = "",
         dry_run: bool = False) -> None:
    """Runs `runner` over the lines of `argfile`.

    Args:
      runner: one of lottery_experiment, train, reinitialize, rearrange,
        random_prune (mnist_fc runners), or a full module path.
      argfile: argfile module name / .py script, or a text file of lines.
      workers: lines run at once, as separate processes.
      argfile_flags: flags for the argfile script, as one quoted string.
      dry_run: print the commands and whether each is done, run nothing.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    module = _module(runner, "lottery_ticket.mnist_fc.runners")
    lines = batch.parse_lines(read_argfile(argfile, argfile_flags))
    if not lines:
        raise ValueError(f"argfile {argfile} gave no lines to run.")
    if dry_run:
        for line in lines:
            state = "done" if batch.is_done(line) else "to run"
            print(f"[{state}] python -m {module} {line.text}")
        return
    summary = batch.run_batch(module, lines, workers=workers)
    print(batch.format_summary(summary))
    sys.exit(summary.exit_code)


if __name__ == "__main__":
    common.run_cli(main)
