"""Running a runner over many flag lines: in parallel, resumable, losing nothing.

Each line is one process: ``python -m RUNNER_MODULE <line split like a shell>``.
Every line names its ``--output_dir``; beside that directory the batch keeps

* ``{output_dir}.log``: everything the line's process printed (appended, one
  header per attempt, so earlier failures stay readable);
* ``{output_dir}.batch.json``: the line's last outcome. A line whose record
  says ``done`` for exactly this line, and whose runs are all still complete,
  is skipped when the batch is rerun.

A line is marked done only after its process exits with status 0, and the
runners themselves skip or resume finished work, so a batch stopped at any
moment finishes only what is missing when rerun.
"""

import dataclasses
import datetime
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore

logger = logging.getLogger("lottery_ticket")

_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 30.0


@dataclasses.dataclass
class Line:
    """One flag line of a batch."""
    number: int  # 1-based position in the argfile.
    text: str
    args: List[str]
    output_dir: str

    @property
    def log_path(self) -> str:
        """Where the line's output goes."""
        return paths.log(self.output_dir)

    @property
    def record_path(self) -> str:
        """Where the line's outcome is recorded."""
        return self.output_dir.rstrip(os.sep) + ".batch.json"


@dataclasses.dataclass
class _Running:
    """A line's process while it runs."""
    line: Line
    process: subprocess.Popen
    log: Any
    began: float


@dataclasses.dataclass
class Summary:
    """What a batch did."""
    total: int
    done: List[Line] = dataclasses.field(default_factory=list)
    skipped: List[Line] = dataclasses.field(default_factory=list)
    failed: List[Line] = dataclasses.field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every line finished; 1 if any failed; 130 if interrupted."""
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


def output_dir_of(args: Sequence[str]) -> Optional[str]:
    """The value of --output_dir in a split flag line, or None."""
    for index, arg in enumerate(args):
        if arg.startswith("--output_dir="):
            return arg.split("=", 1)[1]
        if arg == "--output_dir" and index + 1 < len(args):
            return args[index + 1]
    return None


def parse_lines(text: str) -> List[Line]:
    """Splits argfile output into lines of flags (blank and # lines ignored).

    Raises:
      ValueError: a line does not split like a shell would, has no
        --output_dir, or two lines share an output directory.
    """
    lines = []
    seen: Dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            args = shlex.split(stripped)
        except ValueError as error:
            raise ValueError(f"line {number} does not split into flags ({error}): "
                             f"{stripped}") from error
        output_dir = output_dir_of(args)
        if not output_dir:
            raise ValueError(
                f"line {number} has no --output_dir; the batch runner needs it to "
                f"find the run and to put its log beside it: {stripped}")
        key = os.path.abspath(output_dir)
        if key in seen:
            raise ValueError(f"lines {seen[key]} and {number} both write to "
                             f"{output_dir}; each line needs its own --output_dir.")
        seen[key] = number
        lines.append(Line(number, stripped, args, output_dir))
    return lines


def is_done(line: Line) -> bool:
    """Whether this exact line already finished in an earlier batch and the runs it
    made are still there (a run deleted by hand makes its line run again)."""
    if not os.path.isfile(line.record_path) or not os.path.isdir(line.output_dir):
        return False
    try:
        record = save_restore.read_json(line.record_path)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("status") != "done" or (
            record.get("line") != line.text):
        return False
    made = record.get("runs", [])
    return all(os.path.isfile(os.path.join(line.output_dir, done)) for done in made)


def visible_gpus() -> List[str]:
    """GPU ids to hand out, one per worker: CUDA_VISIBLE_DEVICES or nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip() and gpu.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, row in enumerate(listing.splitlines()) if row.startswith("GPU ")]


def _format_seconds(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def run_batch(runner_module: str, lines: Sequence[Line], workers: int = 1,
              gpus: Optional[Sequence[str]] = None,
              python: str = sys.executable) -> Summary:
    """Runs every line not yet done, `workers` at a time.

    Args:
      runner_module: module run as ``python -m runner_module <flags>``.
      lines: from parse_lines.
      workers: processes at once. On CPUs each gets cores // workers
        TensorFlow threads; with GPUs each worker slot gets one GPU.
      gpus: GPU ids to hand out; default visible_gpus().
      python: the interpreter for the processes.

    Returns:
      A Summary. SIGINT or SIGTERM stops the running lines (their runs stay
      incomplete and are redone next time), marks nothing, and returns with
      `interrupted` set.
    """
    workers = max(1, int(workers))
    gpus = list(visible_gpus() if gpus is None else gpus)
    threads = max(1, (os.cpu_count() or 1) // workers)
    summary = Summary(total=len(lines))
    pending = []
    for line in lines:
        if is_done(line):
            summary.skipped.append(line)
        else:
            pending.append(line)
    if summary.skipped:
        logger.info("%d of %d lines already done; skipping them.", len(summary.skipped),
                    len(lines))
    running: Dict[int, _Running] = {}  # worker slot -> its line
    durations: List[float] = []
    started = time.time()
    stop_signal = []

    def on_signal(number, frame):
        stop_signal.append(number)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while (pending or running) and not stop_signal:
            for slot in range(workers):
                if slot not in running and pending:
                    line = pending.pop(0)
                    running[slot] = _start(line, runner_module, python, slot, gpus, threads)
            time.sleep(_POLL_SECONDS)
            for slot, entry in list(running.items()):
                returncode = entry.process.poll()
                if returncode is None:
                    continue
                del running[slot]
                _finish(entry, returncode, runner_module)
                durations.append(time.time() - entry.began)
                (summary.done if returncode == 0 else summary.failed).append(entry.line)
                _report(summary, len(pending), len(running), durations, workers, entry.line,
                        returncode)
        if stop_signal:
            summary.interrupted = True
            # Lines that finished while the signal arrived are done, not stopped.
            for slot, entry in list(running.items()):
                if entry.process.poll() == 0:
                    del running[slot]
                    _finish(entry, 0, runner_module)
                    summary.done.append(entry.line)
            logger.warning("signal %d: stopping %d running line(s); their runs stay "
                           "incomplete and are redone when the batch is rerun.",
                           stop_signal[0], len(running))
            _stop_all(running)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logger.info("batch took %s", _format_seconds(time.time() - started))
    return summary


def _start(line: Line, runner_module: str, python: str, slot: int, gpus: Sequence[str],
           threads: int) -> _Running:
    os.makedirs(os.path.dirname(os.path.abspath(line.log_path)), exist_ok=True)
    log = open(line.log_path, "a", encoding="utf-8")
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    command = [python, "-m", runner_module] + line.args
    log.write(f"\n===== {stamp} line {line.number}: {shlex.join(command)}\n")
    log.flush()
    environment = dict(os.environ)
    if gpus:
        environment["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    else:
        environment.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        environment.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
    environment.setdefault("PYTHONUNBUFFERED", "1")
    # A session of its own: a Ctrl-C reaches the batch runner, which then stops
    # the lines itself instead of racing them.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=environment,
                               start_new_session=True)
    return _Running(line, process, log, time.time())


def _finish(entry: _Running, returncode: int, runner_module: str) -> None:
    seconds = time.time() - entry.began
    entry.log.write(f"===== exit status {returncode} after {_format_seconds(seconds)}\n")
    entry.log.close()
    save_restore.write_json(entry.line.record_path, {
        "status": "done" if returncode == 0 else "failed",
        # The runs the line made (a trial's levels, or the run itself), so that a
        # run deleted later is noticed.
        "runs": (runs.complete_runs(entry.line.output_dir)
                 if returncode == 0 and os.path.isdir(entry.line.output_dir) else []),
        "line": entry.line.text,
        "runner": runner_module,
        "returncode": returncode,
        "seconds": seconds,
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "log": os.path.abspath(entry.line.log_path),
    })


def _report(summary: Summary, pending: int, running: int, durations: List[float],
            workers: int, line: Line, returncode: int) -> None:
    finished = len(summary.done) + len(summary.failed) + len(summary.skipped)
    remaining = pending + running
    estimate = sum(durations) / len(durations) * remaining / workers if durations else 0
    outcome = "done" if returncode == 0 else f"FAILED (exit {returncode}, see {line.log_path})"
    logger.info("[%d/%d] line %d %s | failed so far %d | about %s left", finished,
                summary.total, line.number, outcome, len(summary.failed),
                _format_seconds(estimate))


def _stop_all(running: Dict[int, _Running]) -> None:
    for entry in running.values():
        if entry.process.poll() is None:
            try:
                os.killpg(entry.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + _STOP_GRACE_SECONDS
    for entry in running.values():
        try:
            entry.process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(entry.process.pid, signal.SIGKILL)
            entry.process.wait()
        entry.log.write("===== stopped by the batch runner; the run is incomplete\n")
        entry.log.close()


def format_summary(summary: Summary) -> str:
    """A few lines saying what was done, skipped and failed (with logs)."""
    rows = [f"{len(summary.done)} done, {len(summary.skipped)} skipped (already done), "
            f"{len(summary.failed)} failed, of {summary.total} lines"]
    if summary.interrupted:
        unfinished = summary.total - len(summary.done) - len(summary.skipped) - len(
            summary.failed)
        rows.append(f"interrupted: {unfinished} line(s) not finished; rerun the same "
                    "command to finish them.")
    for line in summary.failed:
        rows.append(f"FAILED line {line.number}: {line.text}\n    log: {line.log_path}")
    return "\n".join(rows)
