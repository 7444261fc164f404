"""Runs a runner once per flag line of an argfile: in parallel, resumable.

    python -m lottery_ticket.mnist_fc.runners.argfile_runner \\
        --runner=lottery_experiment --argfile=lottery_experiment_argfile \\
        --argfile_flags="--trials=5 --experiment_root=DIR" --workers=2

`--runner` and `--argfile` name modules of the family (`train`,
`lottery_experiment_argfile`), of another family (`mnist_fc.train`), or by
their full module path; `--argfile` may also be a text file of lines or a .py
script. Lines already done are skipped; each line logs to {output_dir}.log.
`--backend` runs the lines on this machine (local, the default), as tasks of a
Ray cluster (ray) or as one Slurm job array (slurm); see cli.batch.
Exit status: 0 all done, 1 some line failed, 130 interrupted, 2 bad input.
"""

import ast
import importlib.util
import logging
import os
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional, Set

from lottery_ticket.cli import batch
from lottery_ticket.cli.flags import REQUIRED, Command, Flag
from lottery_ticket.experiments import kinds
from lottery_ticket.experiments.family import Family

PACKAGE = "lottery_ticket"


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def resolve_module(name: str, family: Family, kind: str) -> str:
    """The module a short, family-qualified or full name means.

    Args:
      name: 'train' (in the family), 'mnist_fc.train' (in that family) or a
        full module path ('lottery_ticket.mnist_fc.runners.train', or any
        importable module).
      family: the family whose modules short names refer to.
      kind: 'runners' or 'argfiles'.

    Raises:
      ValueError: no such module; the message lists where it looked.
    """
    candidates = []
    if "." not in name:
        candidates.append(f"{family.package}.{kind}.{name}")
    else:
        first, _, rest = name.partition(".")
        if "." not in rest:  # FAMILY.NAME: a family of this library, or a package
            candidates += [f"{PACKAGE}.{first}.{kind}.{rest}", f"{first}.{kind}.{rest}"]
    candidates.append(name)
    for candidate in candidates:
        if _exists(candidate):
            return candidate
    raise ValueError(f"no {kind[:-1]} module {name!r}: looked for "
                     f"{', '.join(candidates)}.")


def _is_program(module: str) -> bool:
    """Whether a module's source defines main() or runs as a program (an
    `if __name__ == "__main__":` block), read without importing it (a runner
    imports TensorFlow, and a plain script runs on import)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:  # a package: python -m runs __main__
        return _exists(f"{module}.__main__")
    try:
        tree = ast.parse(spec.loader.get_source(module) or "")
    except (ImportError, OSError, SyntaxError, UnicodeDecodeError, AttributeError):
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            return True
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return True
    return False


def check_runner(module: str) -> None:
    """Refuses a module that is not a runner.

    A runner of this library is a module of a family's `runners` package
    (`lottery_ticket.mnist_fc.runners.train`), the argfile runner excepted; any
    other module must be a program: define main() or have an
    `if __name__ == "__main__":` block.

    Raises:
      ValueError: the module is not a runner; one line saying what a runner is.
    """
    parts = module.split(".")
    if parts[0] == PACKAGE:
        runner = "runners" in parts[:-1] and parts[-1] != "argfile_runner"
    else:
        runner = _is_program(module)
    if not runner:
        raise ValueError(f"--runner={module} is not a runner: give one of a family's "
                         f"runners ({', '.join(kinds.runner_names())}; FAMILY.NAME; or its "
                         "module path) or a program module with a main() or an "
                         "`if __name__ == \"__main__\":` block.")


def read_argfile(argfile: str, family: Family, argfile_flags: str = "") -> str:
    """The flag lines of an argfile module or .py script, or of a text file."""
    if os.path.isdir(argfile):
        raise ValueError(f"--argfile={argfile} is a directory; give a text file of flag "
                         "lines, an argfile .py script or an argfile module.")
    if os.path.isfile(argfile) and not argfile.endswith(".py"):
        if argfile_flags:
            raise ValueError(f"--argfile_flags only applies to argfile scripts; {argfile} "
                             "is a text file of lines.")
        try:
            with open(argfile, encoding="utf-8") as f:
                return f.read()
        except UnicodeDecodeError as error:
            raise ValueError(f"--argfile={argfile} is not a text file of flag lines (not "
                             f"UTF-8 text: byte {error.object[error.start]:#04x} at "
                             f"position {error.start}).") from error
    if argfile.endswith(".py"):
        if not os.path.isfile(argfile):
            raise ValueError(f"argfile script {argfile} does not exist.")
        command = [sys.executable, argfile]
    elif os.sep in argfile or os.path.splitext(argfile)[1] in (".args", ".txt"):
        raise ValueError(f"--argfile={argfile}: no such file.")
    else:
        try:
            module = resolve_module(argfile, family, "argfiles")
        except ValueError as error:
            raise ValueError(f"--argfile={argfile} is neither a file nor an argfile "
                             f"module ({error})") from error
        command = [sys.executable, "-m", module]
    try:
        result = subprocess.run(command + shlex.split(argfile_flags), capture_output=True,
                                text=True, check=False)
    except UnicodeDecodeError as error:
        raise ValueError(f"argfile {argfile} printed something that is not UTF-8 text "
                         f"({error}); it must print flag lines.") from error
    if result.returncode != 0:
        # Its own last line says why (an `error:` line from our argfiles); one line here too.
        said = [row for row in result.stderr.strip().splitlines() if row.strip()]
        why = said[-1].strip() if said else "no message"
        why = why[len("error:"):].strip() if why.startswith("error:") else why
        raise ValueError(f"argfile {argfile} failed (exit {result.returncode}): {why}")
    return result.stdout


BACKENDS = ("local", "ray", "slurm")
# Flags that only mean something on one backend: given with another, an error.
_BACKEND_FLAGS = {"ray_address": "ray", "slurm_partition": "slurm", "slurm_time": "slurm",
                  "slurm_folder": "slurm", "cpus_per_line": "ray or slurm",
                  "gpus_per_line": "ray or slurm"}


def _check_backend(values: Dict[str, Any], given: Set[str]) -> str:
    backend = values["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"--backend={backend}: choose one of {', '.join(BACKENDS)}.")
    for name, where in _BACKEND_FLAGS.items():
        if name in given and backend not in where.split(" or "):
            backends = where.replace(" or ", " or --backend=")
            raise ValueError(f"--{name} applies to --backend={backends} "
                             f"only (this batch runs with --backend={backend}).")
    if values["cpus_per_line"] < 1:
        raise ValueError(f"--cpus_per_line={values['cpus_per_line']}: give each line at "
                         "least one CPU.")
    if values["gpus_per_line"] < 0:
        raise ValueError(f"--gpus_per_line={values['gpus_per_line']}: 0 or more.")
    if values["slurm_time"] < 1:
        raise ValueError(f"--slurm_time={values['slurm_time']}: the time limit of each "
                         "line in minutes, at least 1.")
    return backend


def _slurm_options(values: Dict[str, Any], given: Set[str], lines: List[batch.Line]):
    from lottery_ticket.cli import batch_slurm  # pylint: disable=import-outside-toplevel
    folder = os.path.abspath(values["slurm_folder"] or batch_slurm.default_folder(lines))
    batch_slurm.check_folder(folder, given="slurm_folder" in given)
    return batch_slurm.SlurmOptions(
        folder=folder,
        partition=values["slurm_partition"], time_minutes=values["slurm_time"],
        cpus_per_line=values["cpus_per_line"], gpus_per_line=values["gpus_per_line"],
        max_running=values["workers"] if "workers" in given else None)


def _engine(backend: str, module: str, values: Dict[str, Any], given: Set[str],
            lines: List[batch.Line]) -> batch.Engine:
    """The engine of a backend; Ray and submitit are imported only here."""
    max_running: Optional[int] = values["workers"] if "workers" in given else None
    if backend == "ray":
        from lottery_ticket.cli import batch_ray  # pylint: disable=import-outside-toplevel
        local_cpus = values["workers"] * values["cpus_per_line"] if max_running else None
        return batch_ray.RayEngine(module, values["ray_address"], values["cpus_per_line"],
                                   values["gpus_per_line"], max_running, local_cpus)
    if backend == "slurm":
        from lottery_ticket.cli import batch_slurm  # pylint: disable=import-outside-toplevel
        return batch_slurm.SlurmEngine(module, _slurm_options(values, given, lines))
    return batch.LocalEngine(module, workers=values["workers"])


def command(family: Family) -> Command:
    """The argfile runner of a family."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        if values["workers"] < 1:
            raise ValueError(f"--workers={values['workers']}: run at least one line at "
                             "a time.")
        backend = _check_backend(values, given)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                            datefmt="%H:%M:%S")
        module = resolve_module(values["runner"], family, "runners")
        check_runner(module)
        lines: List[batch.Line] = batch.parse_lines(
            read_argfile(values["argfile"], family, values["argfile_flags"]))
        if not lines:
            raise ValueError(f"argfile {values['argfile']} gave no lines to run.")
        if values["dry_run"]:
            for line in lines:
                note = batch.stale_note(line)
                state = ("done" if batch.is_done(line, module)
                         else "to run" + (f"; {note}" if note else ""))
                print(f"[{state}] python -m {module} {line.text}")
            if backend == "slurm":
                from lottery_ticket.cli import batch_slurm  # pylint: disable=C0415
                print(batch_slurm.describe(lines, _slurm_options(values, given, lines),
                                           module))
            elif backend == "ray":
                where = values["ray_address"] or "a local Ray instance"
                print(f"ray: each line a task with {values['cpus_per_line']} CPU(s) and "
                      f"{values['gpus_per_line']} GPU(s) on {where}")
            return
        engine = _engine(backend, module, values, given, lines)
        summary = batch.drive(engine, lines)
        print(batch.format_summary(summary))
        sys.exit(summary.exit_code)

    flags = [
        Flag("runner", REQUIRED, f"The runner: {', '.join(kinds.runner_names())} (this "
             "family's), FAMILY.NAME, or a module path.", str),
        Flag("argfile", REQUIRED, "An argfile module (this family's, FAMILY.NAME, or a "
             "module path), a .py script, or a text file of flag lines.", str),
        Flag("workers", 1, "Lines run at once: processes on this machine (local); at most "
             "this many tasks at once, and the CPUs of a local instance (ray); the array's "
             "%N limit (slurm).", int),
        Flag("argfile_flags", "", "Flags for the argfile module, as one quoted string.",
             str),
        Flag("dry_run", False, "List the commands and whether each is done (and, on "
             "slurm, the job array that would be submitted); run nothing.", bool),
        Flag("backend", "local", "Where lines run: local (processes on this machine), "
             'ray (tasks of a Ray cluster; pip install ".[ray]"), slurm (one Slurm job '
             'array, through submitit; pip install ".[slurm]").', str),
        Flag("ray_address", None, "ray: the cluster, auto or HOST:PORT; none starts a "
             "new local Ray instance (whatever RAY_ADDRESS or an earlier `ray start` "
             "says).", Optional[str]),
        Flag("cpus_per_line", 1, "ray, slurm: CPUs of each line (its TensorFlow threads "
             "follow).", int),
        Flag("gpus_per_line", 0, "ray, slurm: GPUs of each line.", int),
        Flag("slurm_partition", None, "slurm: the partition; none: the cluster's default.",
             Optional[str]),
        Flag("slurm_time", 60, "slurm: the time limit of each line, in minutes.", int),
        Flag("slurm_folder", None, "slurm: where submitit keeps job scripts, job logs and "
             "the batch's job ids (on a shared filesystem); default: DIR.slurm beside DIR, "
             "the directory holding every line's output directory, above any trial{N}/ "
             "and level directory (outside the experiment).", Optional[str]),
    ]
    return Command(f"python -m {family.runners_package}.argfile_runner",
                   "Runs a runner once per flag line of an argfile, in parallel and "
                   "resumably; lines already done are skipped.", flags, run)
