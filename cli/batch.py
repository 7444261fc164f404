"""Running a runner over many flag lines: in parallel, resumable, losing nothing.

Each line is one process: ``python -m RUNNER_MODULE <line split like a shell>``.
Every line names its ``--output_dir``; beside that directory the batch keeps

* ``{output_dir}.log``: everything the line's process printed (appended, one
  header per attempt, so earlier failures stay readable);
* ``{output_dir}.batch.json``: the line's last outcome (``running`` while an
  attempt runs, then ``done``, ``failed`` or ``stopped``). A line whose record
  says ``done`` for exactly this line and runner, and whose runs are all still
  complete, is skipped when the batch is rerun.

A line is marked done only after its process exits with status 0, and the
runners themselves skip or resume finished work, so a batch stopped at any
moment finishes only what is missing when rerun.

The semantics live here, once: which lines are pending (`is_done`), how one
attempt at a line runs and is recorded (`open_attempt`, `close_attempt`,
`run_line`), progress and the summary (`drive`). Where the lines run is an
`Engine`: `LocalEngine` (a process pool on this machine, the default), and
`batch_ray.RayEngine` and `batch_slurm.SlurmEngine`, which run `run_line` on
cluster workers.
"""

import contextlib
import ctypes
import dataclasses
import datetime
import errno
import fcntl
import importlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore

logger = logging.getLogger("lottery_ticket")

_POLL_SECONDS = 0.2
_STOP_GRACE_SECONDS = 30.0
_HEARTBEAT_SECONDS = 60.0

# Outcomes of one attempt at a line.
DONE = "done"
FAILED = "failed"
STOPPED = "stopped"  # stopped by a signal (the batch's Ctrl-C, a cancel, a time limit)
BUSY = "busy"  # another process holds the line's run lock: this attempt did nothing
RUNNING = "running"  # only in records: an attempt is under way


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

    def absolute(self) -> "Line":
        """The same line with its output directory made absolute, for workers whose
        working directory is not the driver's (the flags themselves are unchanged and
        run in the driver's directory)."""
        return dataclasses.replace(self, output_dir=os.path.abspath(self.output_dir))


@dataclasses.dataclass
class Outcome:
    """How one attempt at a line ended."""
    status: str  # DONE, FAILED, STOPPED or BUSY
    returncode: Optional[int] = None
    seconds: float = 0.0
    note: str = ""  # why, in words, when the status alone does not say


@dataclasses.dataclass
class Summary:
    """What a batch did."""
    total: int
    done: List[Line] = dataclasses.field(default_factory=list)
    skipped: List[Line] = dataclasses.field(default_factory=list)
    failed: List[Line] = dataclasses.field(default_factory=list)
    busy: List[Line] = dataclasses.field(default_factory=list)
    interrupted: bool = False
    notes: Dict[int, str] = dataclasses.field(default_factory=dict)  # line number -> why

    @property
    def exit_code(self) -> int:
        """0 when every line finished; 1 if any failed or was busy elsewhere; 130 if
        interrupted."""
        if self.interrupted:
            return 130
        return 1 if self.failed or self.busy else 0

    @property
    def finished(self) -> int:
        """Lines with a final outcome in this batch (skipped ones included)."""
        return len(self.done) + len(self.skipped) + len(self.failed) + len(self.busy)

    def add(self, line: Line, outcome: Outcome) -> None:
        """Counts a line's outcome; a line stopped by someone else than the batch
        (a time limit, a cancel by hand) counts as failed."""
        if outcome.note:
            self.notes[line.number] = outcome.note
        if outcome.status == DONE:
            self.done.append(line)
        elif outcome.status == BUSY:
            self.busy.append(line)
        else:
            self.failed.append(line)


def flag_of(args: Sequence[str], name: str) -> Optional[str]:
    """The value of --{name} in a split flag line, or None."""
    for index, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and index + 1 < len(args):
            return args[index + 1]
    return None


def output_dir_of(args: Sequence[str]) -> Optional[str]:
    """The value of --output_dir in a split flag line, or None. A population line
    (--output_dir=.../trial{seed} --seed=N --population=K) is kept under its first
    trial's directory (trial N), where its log and record go."""
    output_dir = flag_of(args, "output_dir")
    if output_dir and "{seed}" in output_dir:
        seed = flag_of(args, "seed")
        if seed is None:
            raise ValueError(f"--output_dir={output_dir} holds {{seed}}, but the line has "
                             "no --seed to fill it in: add --seed=N.")
        output_dir = output_dir.replace("{seed}", seed)
    return output_dir


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
        try:
            output_dir = output_dir_of(args)
        except ValueError as error:
            raise ValueError(f"line {number}: {error}") from error
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


def read_record(line: Line) -> Optional[Dict[str, Any]]:
    """The line's record, or None when there is none (or it cannot be read)."""
    try:
        record = save_restore.read_json(line.record_path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_done(line: Line, runner_module: str) -> bool:
    """Whether this exact line already finished under this runner in an earlier batch
    and the runs it made are still there (a run deleted by hand makes its line run
    again). A line done under another runner runs: that runner's own checks of the
    runs' identity decide what it redoes."""
    if not os.path.isdir(line.output_dir):
        return False
    record = read_record(line)
    if (record is None or record.get("status") != DONE or record.get("line") != line.text
            or record.get("runner") != runner_module):
        return False
    made = record.get("runs", [])
    return all(os.path.isfile(os.path.join(line.output_dir, done)) for done in made)


def stale_note(line: Line) -> str:
    """For a line whose record says `running`: whether that attempt is gone (its
    driver was killed) or may still run; '' for any other record."""
    record = read_record(line)
    if record is None or record.get("status") != RUNNING:
        return ""
    host, pid = record.get("host"), record.get("pid")
    if host != socket.gethostname():
        return f"its record says running on {host} (pid {pid}) since {record.get('started')}"
    if isinstance(pid, int) and _alive(pid):
        return f"running now (pid {pid}, {record.get('attempt') or 'another batch'})"
    return f"stale running record: pid {pid} is gone; the line runs again"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def split_done(lines: Sequence[Line], runner_module: str) -> Tuple[Summary, List[Line]]:
    """A Summary with the lines already done (under this runner) as skipped, and the
    lines still to run."""
    summary = Summary(total=len(lines))
    pending = []
    for line in lines:
        (summary.skipped if is_done(line, runner_module) else pending).append(line)
    if summary.skipped:
        logger.info("%d of %d lines already done; skipping them.", len(summary.skipped),
                    len(lines))
    return summary, pending


def lock_holder(line: Line) -> Optional[str]:
    """Who holds the line's run lock (foundations.runs.lock), or None if nobody does.

    Used to tell a duplicate attempt (another worker runs the line right now) from
    a failure: the runner refuses a locked directory with an error.
    """
    lock_path = os.path.join(line.output_dir, runs.LOCK_FILE)
    try:
        handle = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None  # no lock file: no run ever started there
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        try:
            with open(os.path.join(line.output_dir, runs.LOCK_FILENAME),
                      encoding="utf-8") as f:
                return f.read().strip() or "another process"
        except OSError:
            return "another process"
    finally:
        os.close(handle)  # closing releases a lock taken just above
    return None


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


def thread_environment(cpus: int) -> Dict[str, str]:
    """TensorFlow thread counts matched to the CPUs a line gets."""
    cpus = str(max(1, int(cpus)))
    # The lines fill every core between them: none is idle for an overlapped evaluation.
    return {"TF_NUM_INTRAOP_THREADS": cpus, "TF_NUM_INTEROP_THREADS": cpus,
            "LOTTERY_TICKET_OVERLAP_AUTO": "off"}


def import_extra(module: str, backend: str, extra: str) -> Any:
    """An optional extra's module, or a ValueError (one `error:` line) saying how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"--backend={backend} needs {module}, which is not installed "
                         f"({error}): pip install \"lottery_ticket[{extra}]\" (or pip "
                         f"install \".[{extra}]\" in a checkout).") from error


def format_seconds(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _die_with_parent() -> None:
    # In the child before exec: a SIGTERM when the process that started it dies
    # (a worker killed by ray.cancel(force=True), a batch runner killed with
    # SIGKILL), so that no runner is left running unwatched. The runners end on
    # SIGTERM like on Ctrl-C: their runs stay incomplete and are redone.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass
class Attempt:
    """One attempt at a line: its process while it runs."""
    line: Line
    runner_module: str
    process: subprocess.Popen
    log: IO[str]
    began: float
    attempt: str
    previous: Optional[Dict[str, Any]] = None  # the record before this attempt


def open_attempt(line: Line, runner_module: str, python: str = sys.executable,
                 environment: Optional[Mapping[str, str]] = None,
                 cwd: Optional[str] = None, attempt: str = "") -> Attempt:
    """Starts one attempt at a line: a header in its log, a `running` record, and
    ``python -m runner_module <flags>`` in a session of its own.

    Args:
      line: the line.
      runner_module: the runner.
      python: the interpreter.
      environment: variables set on top of this process's environment.
      cwd: where the runner runs (the driver's directory, for relative paths).
      attempt: what runs it ('local slot 2', 'ray', 'slurm job 17_3'), recorded.
    """
    os.makedirs(os.path.dirname(os.path.abspath(line.log_path)), exist_ok=True)
    log = open(line.log_path, "a", encoding="utf-8")
    command = [python, "-m", runner_module] + line.args
    where = f"{socket.gethostname()}{', ' + attempt if attempt else ''}"
    log.write(f"\n===== {_now()} line {line.number} on {where}: {shlex.join(command)}\n")
    log.flush()
    env = dict(os.environ)
    env.update(environment or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    previous = read_record(line)
    # A session of its own: a Ctrl-C reaches the batch runner, which then stops
    # the lines itself instead of racing them.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                               start_new_session=True, preexec_fn=_die_with_parent)
    save_restore.write_json(line.record_path, {
        "status": RUNNING, "line": line.text, "runner": runner_module,
        "host": socket.gethostname(), "pid": process.pid, "attempt": attempt,
        "started": _now(), "log": os.path.abspath(line.log_path)})
    return Attempt(line, runner_module, process, log, time.time(), attempt, previous)


def close_attempt(entry: Attempt, returncode: Optional[int]) -> Outcome:
    """Records how an attempt ended (returncode None: stopped by the batch).

    A failure while another process holds the line's run lock is a duplicate
    attempt (BUSY): the record of the attempt that runs it is left alone. A failure
    of a line that another process finished meanwhile is not recorded over it.
    """
    line = entry.line
    seconds = time.time() - entry.began
    stopped = returncode is None or returncode in (130, -signal.SIGINT, -signal.SIGTERM,
                                                   -signal.SIGKILL)
    if returncode == 0:
        outcome = Outcome(DONE, 0, seconds)
    elif (busy := busy_outcome(line)) is not None:
        outcome = dataclasses.replace(busy, returncode=returncode, seconds=seconds)
    elif is_done(line, entry.runner_module):
        outcome = Outcome(DONE, returncode, seconds, "finished by another process")
    elif stopped:
        outcome = Outcome(STOPPED, returncode, seconds,
                          "stopped by a signal (a time limit or a cancel?)")
    else:
        outcome = Outcome(FAILED, returncode, seconds)
    footer = {DONE: f"exit status {returncode}",
              FAILED: f"exit status {returncode}",
              STOPPED: "stopped; the run is incomplete and is redone when the batch is "
                       "rerun",
              BUSY: f"not run: {outcome.note}"}[outcome.status]
    entry.log.write(f"===== {footer} after {format_seconds(seconds)}\n")
    entry.log.close()
    if outcome.note == "finished by another process":
        return outcome  # the record belongs to the attempt that ran the line
    if outcome.status == BUSY:
        # Put back the record of the attempt that holds the line (this one's
        # `running` record went over it).
        if entry.previous is not None:
            save_restore.write_json(line.record_path, entry.previous)
        else:
            with contextlib.suppress(OSError):
                os.remove(line.record_path)
        return outcome
    save_restore.write_json(line.record_path, {
        "status": outcome.status,
        # The runs the line made (a trial's levels, or the run itself), so that a
        # run deleted later is noticed.
        "runs": (runs.complete_runs(line.output_dir)
                 if returncode == 0 and os.path.isdir(line.output_dir) else []),
        "line": line.text,
        "runner": entry.runner_module,
        "returncode": returncode,
        "seconds": seconds,
        "host": socket.gethostname(),
        "attempt": entry.attempt,
        "finished": _now(),
        "log": os.path.abspath(line.log_path),
    })
    return outcome


def stop_attempts(entries: Sequence[Attempt],
                  grace_seconds: float = _STOP_GRACE_SECONDS) -> None:
    """SIGTERM to each attempt's process group, SIGKILL after the grace period."""
    for entry in entries:
        if entry.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry.process.pid, signal.SIGTERM)
    deadline = time.time() + grace_seconds
    for entry in entries:
        try:
            entry.process.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(entry.process.pid, signal.SIGKILL)
            entry.process.wait()


def busy_outcome(line: Line) -> Optional[Outcome]:
    """BUSY if another process holds the line's run lock (checked before starting it,
    so that a duplicate attempt leaves the line's log and record alone)."""
    holder = lock_holder(line)
    if holder is None:
        return None
    return Outcome(BUSY, None, 0.0, f"in use by another process ({holder}); rerun the "
                                    "batch after it ends")


def run_line(line: Line, runner_module: str, python: str = sys.executable,
             environment: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None,
             attempt: str = "") -> Outcome:
    """One attempt at a line, start to end, in this process: what a cluster worker
    runs. A line found done (by an earlier job) is not run again; a line whose run
    lock another process holds is BUSY without starting the runner. An interrupt
    here (KeyboardInterrupt, SystemExit from a signal handler) stops the runner,
    records the line as stopped, and is raised on."""
    if is_done(line, runner_module):
        return Outcome(DONE, 0, 0.0, "already done")
    busy = busy_outcome(line)
    if busy is not None:
        return busy
    entry = open_attempt(line, runner_module, python, environment, cwd, attempt)
    try:
        # Polling, not wait(): an exception raised into this thread (ray.cancel)
        # arrives between Python steps, never inside a blocking waitpid.
        while (returncode := entry.process.poll()) is None:
            time.sleep(_POLL_SECONDS)
    except BaseException:
        stop_attempts([entry], grace_seconds=10.0)
        close_attempt(entry, None)
        raise
    return close_attempt(entry, returncode)


class Engine:
    """Where a batch's lines run. `drive` calls start once, poll until nothing is
    unfinished, or stop on a signal; close always."""

    name = "engine"
    runner_module = ""  # the runner every line runs with

    def start(self, lines: List[Line]) -> None:
        """Begins running these lines (none of them done)."""
        raise NotImplementedError

    def poll(self) -> List[Tuple[Line, Outcome]]:
        """Waits a little and returns the lines that ended since the last call."""
        raise NotImplementedError

    def unfinished(self) -> int:
        """Lines started or waiting whose outcome poll has not returned yet."""
        raise NotImplementedError

    def counts(self) -> Tuple[int, int]:
        """(running, waiting) among the unfinished lines."""
        raise NotImplementedError

    def parallelism(self) -> int:
        """About how many lines run at once, for the ETA."""
        return 1

    def stop(self) -> List[Tuple[Line, Outcome]]:
        """Cancels every unfinished line (their runs stay incomplete); returns the
        lines that ended anyway, as poll does."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases what start acquired."""


class Progress:
    """Logs a line per outcome and a heartbeat: done / running / pending and an ETA."""

    def __init__(self, summary: Summary, engine: Engine):
        self.summary = summary
        self.engine = engine
        self.durations: List[float] = []
        self.last = time.time()

    def line_ended(self, line: Line, outcome: Outcome) -> None:
        """Logs a line's outcome with the batch's state."""
        if outcome.seconds > 0:
            self.durations.append(outcome.seconds)
        if outcome.status == DONE:
            said = "done" + (f" ({outcome.note})" if outcome.note else "")
        elif outcome.status == BUSY:
            said = f"BUSY: {outcome.note}"
        else:
            why = f", {outcome.note}" if outcome.note else ""
            said = (f"FAILED (exit {outcome.returncode}{why}, see {line.log_path})")
        logger.info("[%d/%d] line %d %s | %s", self.summary.finished, self.summary.total,
                    line.number, said, self.state())
        self.last = time.time()

    def heartbeat(self) -> None:
        """Logs the batch's state if nothing was said for a while."""
        if time.time() - self.last >= _HEARTBEAT_SECONDS:
            logger.info("[%d/%d] %s", self.summary.finished, self.summary.total,
                        self.state())
            self.last = time.time()

    def state(self) -> str:
        """'done 3, failed 1, busy 1, running 2, pending 5, about 0:04:10 left' (busy
        only when some line is)."""
        running, waiting = self.engine.counts()
        remaining = running + waiting
        if self.durations and remaining:
            mean = sum(self.durations) / len(self.durations)
            eta = f"about {format_seconds(mean * remaining / self.engine.parallelism())} left"
        else:
            eta = "ETA unknown" if remaining else "nothing left"
        # Busy lines are counted apart, as the summary counts them.
        busy = f", busy {len(self.summary.busy)}" if self.summary.busy else ""
        return (f"done {len(self.summary.done) + len(self.summary.skipped)}, failed "
                f"{len(self.summary.failed)}{busy}, running {running}, pending {waiting}, "
                f"{eta}")


def drive(engine: Engine, lines: Sequence[Line]) -> Summary:
    """Runs every line not yet done on an engine, with the same semantics on all.

    Returns:
      A Summary. SIGINT or SIGTERM stops the running lines (their runs stay
      incomplete and are redone next time) and returns with `interrupted` set.
    """
    summary, pending = split_done(lines, engine.runner_module)
    progress = Progress(summary, engine)
    started = time.time()
    stop_signal: List[int] = []

    def on_signal(number, frame):
        stop_signal.append(number)

    def interrupt(number, frame):
        stop_signal.append(number)
        raise KeyboardInterrupt

    # While the engine starts (connecting to a cluster, submitting), a signal
    # interrupts it: a start that blocks must not swallow Ctrl-C. Once lines run,
    # a signal is only recorded, and the loop below stops them in order.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            if pending:
                engine.start(pending)
        except KeyboardInterrupt:
            stop_signal.append(signal.SIGINT)
        except SystemExit as error:
            # ray.init puts in a SIGTERM handler of its own that exits with 15.
            if error.code != signal.SIGTERM:
                raise
            stop_signal.append(signal.SIGTERM)
        for sig in previous:
            signal.signal(sig, on_signal)
        while engine.unfinished() and not stop_signal:
            for line, outcome in engine.poll():
                summary.add(line, outcome)
                progress.line_ended(line, outcome)
            progress.heartbeat()
        if stop_signal:
            summary.interrupted = True
            running, waiting = engine.counts()
            logger.warning("signal %d: stopping %d running and %d waiting line(s) on %s; "
                           "their runs stay incomplete and are redone when the batch is "
                           "rerun.", stop_signal[0], running, waiting, engine.name)
            for line, outcome in engine.stop():
                # Lines that finished while the signal arrived are done, not stopped.
                if outcome.status != STOPPED:
                    summary.add(line, outcome)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        engine.close()
    logger.info("batch took %s", format_seconds(time.time() - started))
    return summary


class LocalEngine(Engine):
    """Lines as processes on this machine, `workers` at a time.

    On CPUs each process gets cores // workers TensorFlow threads; with GPUs each
    worker slot gets one GPU.
    """

    name = "this machine"

    def __init__(self, runner_module: str, workers: int = 1,
                 gpus: Optional[Sequence[str]] = None, python: str = sys.executable):
        self.runner_module = runner_module
        self.workers = max(1, int(workers))
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.python = python
        self.waiting: List[Line] = []
        self.running: Dict[int, Attempt] = {}  # worker slot -> its line
        self.ended: List[Tuple[Line, Outcome]] = []  # not started: busy elsewhere

    def start(self, lines: List[Line]) -> None:
        self.waiting = list(lines)
        self._fill()

    def _fill(self) -> None:
        for slot in range(self.workers):
            while slot not in self.running and self.waiting:
                line = self.waiting.pop(0)
                busy = busy_outcome(line)
                if busy is not None:
                    self.ended.append((line, busy))
                    continue
                if self.gpus:
                    environment = {"CUDA_VISIBLE_DEVICES": self.gpus[slot % len(self.gpus)]}
                else:
                    # Threads set by hand stay as they are.
                    environment = {name: os.environ.get(name, value) for name, value
                                   in thread_environment(self.threads).items()}
                self.running[slot] = open_attempt(line, self.runner_module, self.python,
                                                  environment, attempt=f"local slot {slot}")

    def poll(self) -> List[Tuple[Line, Outcome]]:
        time.sleep(_POLL_SECONDS)
        ended, self.ended = self.ended, []
        for slot, entry in list(self.running.items()):
            returncode = entry.process.poll()
            if returncode is not None:
                del self.running[slot]
                ended.append((entry.line, close_attempt(entry, returncode)))
        self._fill()
        return ended

    def unfinished(self) -> int:
        return len(self.running) + len(self.waiting) + len(self.ended)

    def counts(self) -> Tuple[int, int]:
        return len(self.running), len(self.waiting)

    def parallelism(self) -> int:
        return self.workers

    def stop(self) -> List[Tuple[Line, Outcome]]:
        ended, self.ended = self.ended, []
        for slot, entry in list(self.running.items()):
            if entry.process.poll() == 0:
                del self.running[slot]
                ended.append((entry.line, close_attempt(entry, 0)))
        entries = list(self.running.values())
        stop_attempts(entries)
        for entry in entries:
            ended.append((entry.line, close_attempt(entry, None)))
        self.running.clear()
        self.waiting.clear()
        return ended


def run_batch(runner_module: str, lines: Sequence[Line], workers: int = 1,
              gpus: Optional[Sequence[str]] = None,
              python: str = sys.executable) -> Summary:
    """Runs every line not yet done on this machine, `workers` at a time.

    Args:
      runner_module: module run as ``python -m runner_module <flags>``.
      lines: from parse_lines.
      workers: processes at once. On CPUs each gets cores // workers
        TensorFlow threads; with GPUs each worker slot gets one GPU.
      gpus: GPU ids to hand out; default visible_gpus().
      python: the interpreter for the processes.

    Returns:
      A Summary, as `drive` returns it.
    """
    return drive(LocalEngine(runner_module, workers, gpus, python), lines)


def format_summary(summary: Summary) -> str:
    """A few lines saying what was done, skipped and failed (with logs)."""
    rows = [f"{len(summary.done)} done, {len(summary.skipped)} skipped (already done), "
            f"{len(summary.failed)} failed, of {summary.total} lines"]
    if summary.busy:
        rows[0] += f"; {len(summary.busy)} in use by another process"
    if summary.interrupted:
        unfinished = summary.total - summary.finished
        rows.append(f"interrupted: {unfinished} line(s) not finished; rerun the same "
                    "command to finish them.")
    for line in summary.failed:
        why = summary.notes.get(line.number)
        rows.append(f"FAILED line {line.number}: {line.text}\n    log: {line.log_path}"
                    + (f"\n    {why}" if why else ""))
    for line in summary.busy:
        rows.append(f"BUSY line {line.number}: {line.text}\n    "
                    f"{summary.notes.get(line.number, '')}")
    return "\n".join(rows)
