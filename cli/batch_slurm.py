"""Batches on a Slurm cluster, through submitit: one job array per batch.

Each array task runs `batch.run_line` (so logs, records, skipping and locking are
those of a local batch). The driver polls `squeue` (there may be no accounting
database, so never `sacct`) and the jobs' results, and summarizes like the
other engines.

Re-attaching: the job id of every line's submissions is kept in
``{slurm_folder}/batch_state.json`` (written atomically right after each
submission). A rerun of the batch command first asks `squeue` which of those
jobs are still queued or running and waits for them instead of submitting the
lines again; only lines with no live job are submitted. One driver at a time
holds the folder (a lock), so two drivers never submit the same lines.

Ctrl-C or SIGTERM cancels the batch's jobs (`scancel`); a driver that dies
otherwise (SIGKILL, a dropped ssh session) leaves them running, and the next
run re-attaches to them.
"""

import contextlib
import dataclasses
import getpass
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lottery_ticket.cli import batch
from lottery_ticket.cli.batch import Line, Outcome
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore

logger = logging.getLogger("lottery_ticket")

STATE_FILE = "batch_state.json"
JOB_NAME = "lottery_ticket_batch"
_POLL_SECONDS = 3.0
_CANCEL_GRACE_SECONDS = 60.0
# squeue states of a job that is not over yet; anything else (or absence) is over.
_LIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
         "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}
_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"}
# Pending reasons that mean the request does not fit the partition: it would wait forever.
_NEVER_RUNS = ("PartitionConfig", "PartitionTimeLimit", "PartitionNodeLimit",
               "BadConstraints", "ReqNodeNotAvail")
# What slurmstepd writes in a job's stderr when it ends the job at its time limit.
_TIME_LIMIT_MARK = "DUE TO TIME LIMIT"
# Directories of an experiment's layout (trial{N}/{level}/): the default folder
# goes above them, as the analysis reads every directory inside them.
_LAYOUT_DIRECTORY = re.compile(r"^(trial\w+|\d+)$")


def import_submitit() -> Any:
    """The submitit module, or a ValueError saying how to install it."""
    return batch.import_extra("submitit", "slurm", "slurm")


@dataclasses.dataclass
class SlurmOptions:
    """What each array task asks Slurm for.

    Attributes:
      folder: submitit's folder (scripts, pickles, job logs, the batch state);
        on a filesystem the nodes share.
      partition: None for the cluster's default partition.
      time_minutes: the time limit of each line.
      cpus_per_line, gpus_per_line: resources of each array task.
      max_running: array tasks running at once (None: as many as Slurm allows).
      cluster: 'slurm', or 'local' for submitit's local executor (the same
        submission and bookkeeping without a cluster; used by the tests).
    """
    folder: str
    partition: Optional[str] = None
    time_minutes: int = 60
    cpus_per_line: int = 1
    gpus_per_line: int = 0
    max_running: Optional[int] = None
    cluster: str = "slurm"

    def sbatch_flags(self, count: int) -> List[str]:
        """The sbatch flags of an array of `count` tasks."""
        parallel = min(count, self.max_running) if self.max_running else count
        flags = [f"--array=0-{count - 1}%{parallel}", f"--job-name={JOB_NAME}",
                 f"--time={self.time_minutes}", f"--cpus-per-task={self.cpus_per_line}"]
        if self.partition:
            flags.append(f"--partition={self.partition}")
        if self.gpus_per_line:
            flags.append(f"--gpus-per-node={self.gpus_per_line}")
        return flags


def default_folder(lines: Sequence[Line]) -> str:
    """DIR.slurm beside DIR, where DIR holds every line's output directory and is
    above any trial{N}/ or level directory: outside the experiment tree (the
    analysis reads every directory inside trials and levels), and the same
    whatever the current directory.

    Raises:
      ValueError: the lines share no directory but /; --slurm_folder is needed.
    """
    common = os.path.commonpath([os.path.dirname(os.path.abspath(line.output_dir))
                                 for line in lines])
    while _LAYOUT_DIRECTORY.match(os.path.basename(common)):
        common = os.path.dirname(common)
    if common == os.path.dirname(common):
        raise ValueError("the lines' output directories share no directory but "
                         f"{common}, beside which there is no default Slurm folder; give "
                         "--slurm_folder=DIR, a directory every node shares.")
    return common + ".slurm"


def check_folder(folder: str, given: bool) -> None:
    """Proves that the Slurm folder exists or can be made, without leaving anything.

    Raises:
      ValueError: it cannot; names --slurm_folder and the fix.
    """
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    why = ""
    if not os.path.isdir(existing):
        why = f"{existing} is not a directory"
    else:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".batch_probe_", dir=existing))
        except OSError as error:
            why = f"cannot write in {existing}: {error.strerror or error}"
    if why:
        raise ValueError(_folder_problem(folder, why, given))


def _folder_problem(folder: str, why: str, given: bool) -> str:
    which = f"--slurm_folder={folder}" if given else f"the default Slurm folder {folder}"
    return (f"{which} cannot be made ({why}); give --slurm_folder=DIR, a writable "
            "directory on a filesystem every node shares.")


def check_partition(partition: Optional[str]) -> None:
    """Refuses a partition that `sinfo` does not list (nothing checked where sinfo
    cannot answer: sbatch then says it).

    Raises:
      ValueError: no such partition; lists those there are.
    """
    if not partition or not _which("sinfo"):
        return
    try:
        result = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True,
                                text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return
    known = [name.strip().rstrip("*") for name in result.stdout.split() if name.strip()]
    if result.returncode == 0 and known and partition not in known:
        raise ValueError(f"--slurm_partition={partition}: no such partition; sinfo lists "
                         f"{', '.join(sorted(set(known)))}.")


def _line_job(line: Line, runner_module: str, cwd: str, cpus: int) -> Outcome:
    """A line, inside a Slurm array task (or a submitit local job)."""
    job = _own_job_id()
    return batch.run_line(line, runner_module, sys.executable,
                          batch.thread_environment(cpus), cwd=cwd, attempt=f"job {job}")


def _own_job_id() -> str:
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID", "?")


class BatchState:
    """The job ids submitted for each line, kept in the slurm folder."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, STATE_FILE)
        self.lines: Dict[str, Dict[str, Any]] = {}
        self.limits: Dict[str, int] = {}  # job id -> its time limit in minutes
        if os.path.isfile(self.path):
            try:
                state = save_restore.read_json(self.path)
                self.lines = state.get("lines", {})
                self.limits = state.get("time_minutes", {})
            except (OSError, ValueError, AttributeError) as error:
                raise ValueError(f"{self.path} cannot be read ({error}); it records the "
                                 "jobs of earlier submissions. Move it away only once "
                                 "none of them runs (squeue).") from error

    @staticmethod
    def key(line: Line) -> str:
        """Lines are known by their output directory."""
        return os.path.abspath(line.output_dir)

    def jobs(self, line: Line) -> List[str]:
        """Every job id submitted for the line, oldest first."""
        entry = self.lines.get(self.key(line), {})
        return list(entry.get("jobs", [])) if entry.get("line") == line.text else []

    def add(self, line: Line, job_id: str, time_minutes: int) -> None:
        """Records a submission (save() writes it)."""
        self.lines[self.key(line)] = {"line": line.text, "jobs": self.jobs(line) + [job_id]}
        self.limits[job_id] = time_minutes

    def save(self) -> None:
        """Writes the state atomically."""
        save_restore.write_json(self.path, {"lines": self.lines,
                                            "time_minutes": self.limits})


def squeue_states(job_ids: Sequence[str]) -> Dict[str, str]:
    """job id -> squeue state, for the jobs among `job_ids` still queued or running
    (a pending job's state reads PENDING:REASON when Slurm says it cannot start).

    Raises:
      OSError: squeue failed (no controller reachable).
    """
    result = subprocess.run(
        ["squeue", "--noheader", "--array", "--format=%i|%T|%r",
         f"--user={getpass.getuser()}"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(f"squeue failed (exit {result.returncode}): "
                      f"{result.stderr.strip() or result.stdout.strip()}")
    wanted = set(job_ids)
    states = {}
    for row in result.stdout.splitlines():
        job_id, _, rest = row.strip().partition("|")
        state, _, reason = rest.partition("|")
        if job_id in wanted and state in _LIVE:
            states[job_id] = (f"{state}:{reason}" if reason.startswith(_NEVER_RUNS)
                              else state)
    return states


class Queue:
    """Submitting, watching and cancelling jobs on one kind of cluster."""

    def __init__(self, options: SlurmOptions):
        self.options = options
        self.submitit = import_submitit()
        if options.cluster == "slurm":
            for tool in ("sbatch", "squeue", "scancel"):
                if not _which(tool):
                    raise ValueError(f"--backend=slurm: {tool} is not on PATH; run the "
                                     "batch on a Slurm login node (or use --backend=local).")
            check_partition(options.partition)
        self.jobs: Dict[str, Any] = {}  # job id -> submitit Job, for jobs submitted here

    def submit(self, lines: Sequence[Line], runner_module: str, cwd: str) -> List[str]:
        """One array of jobs, one per line; their ids in order."""
        options = self.options
        if options.cluster == "local":
            executor = self.submitit.LocalExecutor(folder=options.folder)
            executor.update_parameters(timeout_min=options.time_minutes)
        else:
            executor = self.submitit.SlurmExecutor(folder=options.folder)
            # signal_delay_s=0: submitit asks Slurm for USR2 this long before the time
            # limit and then ends a job that cannot checkpoint (a line cannot), so
            # its default of 90 s cut every line short by up to 90 s (and at once
            # when the limit is shorter).
            parameters = dict(job_name=JOB_NAME, time=options.time_minutes,
                              cpus_per_task=options.cpus_per_line, signal_delay_s=0,
                              array_parallelism=options.max_running or len(lines))
            if options.partition:
                parameters["partition"] = options.partition
            if options.gpus_per_line:
                parameters["gpus_per_node"] = options.gpus_per_line
            executor.update_parameters(**parameters)
        count = len(lines)
        before = set(os.listdir(options.folder))
        said = io.StringIO()
        try:
            # submitit prints sbatch's stderr before raising it: said once, below.
            with contextlib.redirect_stderr(said):
                jobs = executor.map_array(_line_job, list(lines), [runner_module] * count,
                                          [cwd] * count, [options.cpus_per_line] * count)
        except (self.submitit.core.utils.FailedJobError, OSError) as error:
            # The scripts and pickles of a submission that never was.
            for name in set(os.listdir(options.folder)) - before:
                path = os.path.join(options.folder, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.remove(path)
            raise ValueError(sbatch_refusal(str(error) or said.getvalue(), options)) from error
        for job in jobs:
            self.jobs[job.job_id] = job
        return [job.job_id for job in jobs]

    def states(self, job_ids: Sequence[str]) -> Dict[str, str]:
        """job id -> state, for the jobs among `job_ids` not over yet."""
        if self.options.cluster == "local":
            return {job_id: "RUNNING" for job_id in job_ids if self._local_alive(job_id)}
        return squeue_states(job_ids)

    def _local_alive(self, job_id: str) -> bool:
        job = self.jobs.get(job_id)
        if job is not None and getattr(job, "_process", None) is not None:
            return job._process.poll() is None  # pylint: disable=protected-access
        # A job of an earlier driver: a live process that is not a zombie.
        try:
            with open(f"/proc/{int(job_id)}/stat", encoding="utf-8") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, ValueError, IndexError):
            return False

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancels these jobs (their lines record themselves as stopped)."""
        if not job_ids:
            return
        if self.options.cluster == "local":
            for job_id in job_ids:
                try:  # submitit's local controller forwards SIGINT to the job
                    os.kill(int(job_id), 2)
                except (OSError, ValueError):
                    pass
            return
        subprocess.run(["scancel"] + list(job_ids), capture_output=True, check=False)

    def result(self, job_id: str) -> Optional[Tuple[str, Any]]:
        """submitit's ('success', value) or ('error', traceback) of a job, or None."""
        path = self.submitit.core.utils.JobPaths(self.options.folder,
                                                 job_id=job_id).result_pickle
        try:
            return self.submitit.core.utils.pickle_load(path)
        except (OSError, EOFError, ValueError, AttributeError, ImportError):
            return None

    def log_of(self, job_id: str) -> str:
        """The job's stderr file."""
        return str(self.submitit.core.utils.JobPaths(self.options.folder,
                                                     job_id=job_id).stderr)

    def timed_out(self, job_id: str) -> bool:
        """Whether Slurm ended the job at its time limit (it says so in the job's
        stderr)."""
        try:
            with open(self.log_of(job_id), encoding="utf-8", errors="replace") as f:
                return _TIME_LIMIT_MARK in f.read()
        except OSError:
            return False


def sbatch_refusal(message: str, options: SlurmOptions) -> str:
    """One line for an sbatch that refused the array: its own words, and the flag
    that asked for what the cluster lacks."""
    said = [row.strip() for row in message.splitlines() if row.strip()]
    said = [row.split("error:", 1)[1].strip() if "error:" in row else row for row in said]
    words = "; ".join(dict.fromkeys(said)) or "no message"
    lowered = words.lower()
    if options.partition and "partition" in lowered:
        hint = f"check --slurm_partition={options.partition} (sinfo lists the partitions)"
    elif options.gpus_per_line and ("gres" in lowered or "gpu" in lowered
                                    or "node configuration" in lowered):
        hint = (f"--gpus_per_line={options.gpus_per_line}: the partition has no such GPUs; "
                "lower it or choose a --slurm_partition with GPUs")
    elif "time limit" in lowered:
        hint = f"--slurm_time={options.time_minutes:g} is more than the partition allows"
    elif "cpu" in lowered or "node configuration" in lowered:
        hint = (f"--cpus_per_line={options.cpus_per_line} is more than a node of the "
                "partition has")
    else:
        hint = ("check --slurm_partition, --slurm_time, --cpus_per_line and "
                "--gpus_per_line")
    return f"sbatch refused the job array: {words}; {hint}. Nothing was submitted."


def _which(tool: str) -> bool:
    return any(os.access(os.path.join(directory, tool), os.X_OK)
               for directory in os.environ.get("PATH", "").split(os.pathsep) if directory)


def describe(lines: Sequence[Line], options: SlurmOptions, runner_module: str) -> str:
    """What a run of the batch would submit and re-attach to (for --dry_run)."""
    if options.cluster == "slurm":
        check_partition(options.partition)
    state = BatchState(options.folder)
    pending = [line for line in lines if not batch.is_done(line, runner_module)]
    known = {line.number: state.jobs(line)[-1] for line in pending if state.jobs(line)}
    live: Dict[str, str] = {}
    rows = []
    if known and options.cluster == "slurm" and _which("squeue"):
        try:
            live = squeue_states(list(known.values()))
        except OSError as error:
            rows.append(f"slurm: cannot ask squeue which jobs still run ({error})")
    attach = [line for line in pending if known.get(line.number) in live]
    submit = [line for line in pending if line not in attach]
    for line in attach:
        job_id = known[line.number]
        rows.append(f"slurm: line {line.number} re-attaches to job {job_id} "
                    f"({live[job_id]})")
    if submit:
        rows.append(f"slurm: would submit 1 job array of {len(submit)} task(s) "
                    f"(lines {', '.join(str(line.number) for line in submit)}): sbatch "
                    + " ".join(options.sbatch_flags(len(submit))))
        rows.append(f"slurm: each task runs python -m {runner_module} <its line> in "
                    f"{os.getcwd()}; job scripts, logs and {STATE_FILE} in {options.folder}")
    elif not attach:
        rows.append("slurm: nothing to submit, every line is done")
    return "\n".join(rows)


class SlurmEngine(batch.Engine):
    """The lines as one Slurm job array, re-attaching to jobs of an earlier run."""

    name = "Slurm"

    def __init__(self, runner_module: str, options: SlurmOptions,
                 poll_seconds: float = _POLL_SECONDS):
        self.runner_module = runner_module
        self.options = options
        self.poll_seconds = poll_seconds
        self.queue = Queue(options)
        self.tracked: Dict[str, Line] = {}  # job id -> its line, until its outcome is known
        self.live: Dict[str, str] = {}  # job id -> squeue state, from the last poll
        self.gone_once: set = set()
        self.warned = False
        self.most_running = 1
        self.limits: Dict[str, int] = {}  # job id -> its time limit in minutes
        self._lock = None
        self._made_folder = False

    def start(self, lines: List[Line]) -> None:
        self._made_folder = not os.path.exists(self.options.folder)
        try:
            os.makedirs(self.options.folder, exist_ok=True)
        except OSError as error:
            raise ValueError(_folder_problem(self.options.folder, str(error.strerror or error),
                                             given=True)) from error
        # One driver per folder: two would both submit the lines neither sees queued.
        self._lock = runs.lock(self.options.folder, "Slurm batch")
        self._lock.__enter__()
        lines = [line.absolute() for line in lines]
        state = BatchState(self.options.folder)
        self.limits = dict(state.limits)
        last = {line.number: state.jobs(line)[-1] for line in lines if state.jobs(line)}
        self.live = self.queue.states(list(last.values()))
        submit = []
        for line in lines:
            job_id = last.get(line.number)
            if job_id in self.live:
                self.tracked[job_id] = line
            else:
                submit.append(line)
        if self.tracked:
            logger.info("re-attached to %d job(s) of an earlier run, still queued or "
                        "running: %s", len(self.tracked), " ".join(sorted(self.tracked)))
        if submit:
            job_ids = self.queue.submit(submit, self.runner_module, os.getcwd())
            for line, job_id in zip(submit, job_ids):
                state.add(line, job_id, self.options.time_minutes)
                self.limits[job_id] = self.options.time_minutes
                self.tracked[job_id] = line
            # Right away: a driver killed from here on is re-attached, not resubmitted.
            state.save()
            logger.info("submitted %d line(s) as job array %s (%s); job logs in %s",
                        len(submit), job_ids[0].split("_")[0],
                        " ".join(self.options.sbatch_flags(len(submit))), self.options.folder)

    def poll(self) -> List[Tuple[Line, Outcome]]:
        time.sleep(self.poll_seconds)
        self.live = self.queue.states(list(self.tracked))
        ended = []
        for job_id, line in list(self.tracked.items()):
            if job_id in self.live:
                continue
            outcome = self._outcome(job_id, line)
            # A job just gone from squeue may not have its result visible yet (a shared
            # filesystem's caches): one more poll before calling it lost.
            if outcome is None and job_id not in self.gone_once:
                self.gone_once.add(job_id)
                continue
            del self.tracked[job_id]
            ended.append((line, outcome or Outcome(
                batch.FAILED, None, 0.0,
                f"Slurm job {job_id} ended without a result (cancelled, out of time, or "
                f"its node failed); see {self.queue.log_of(job_id)}")))
        self.most_running = max(self.most_running, self.counts()[0])
        stuck = sorted(job_id for job_id, state in self.live.items() if ":" in state)
        if stuck and not self.warned:
            self.warned = True
            logger.warning(
                "Slurm will not start job(s) %s as asked (%s): the partition does not "
                "allow these resources or time. Stop the batch (Ctrl-C cancels them) and "
                "lower --cpus_per_line, --gpus_per_line or --slurm_time, or choose "
                "another --slurm_partition.", " ".join(stuck), self.live[stuck[0]])
        return ended

    def _outcome(self, job_id: str, line: Line) -> Optional[Outcome]:
        outcome = self._result(job_id, line)
        if outcome is not None and outcome.status != batch.DONE and self.queue.timed_out(
                job_id):
            minutes = self.limits.get(job_id, self.options.time_minutes)
            outcome = dataclasses.replace(outcome, note=(
                f"timed out after the --slurm_time limit of {minutes} minute"
                f"{'' if minutes == 1 else 's'}; raise --slurm_time (Slurm job {job_id}, "
                f"see {line.log_path})"))
        return outcome

    def _result(self, job_id: str, line: Line) -> Optional[Outcome]:
        result = self.queue.result(job_id)
        if result is not None:
            kind, value = result
            if kind == "success" and isinstance(value, Outcome):
                return value
            last = str(value).strip().splitlines()[-1:] or ["no message"]
            return Outcome(batch.FAILED, None, 0.0, f"Slurm job {job_id} raised "
                           f"{last[0]}; see {self.queue.log_of(job_id)}")
        if batch.is_done(line, self.runner_module):
            return Outcome(batch.DONE, 0, 0.0, f"done (job {job_id})")
        if self.queue.timed_out(job_id):
            # Killed at its limit before it could report (its runner ignored SIGTERM).
            return Outcome(batch.STOPPED, None, 0.0)
        return None

    def unfinished(self) -> int:
        return len(self.tracked)

    def counts(self) -> Tuple[int, int]:
        running = sum(1 for job_id in self.tracked if self.live.get(job_id) in _RUNNING)
        return running, len(self.tracked) - running

    def parallelism(self) -> int:
        return self.most_running

    def stop(self) -> List[Tuple[Line, Outcome]]:
        self.queue.cancel(sorted(self.live.keys() & self.tracked.keys()))
        ended = []
        deadline = time.time() + _CANCEL_GRACE_SECONDS
        while self.tracked and time.time() < deadline:
            time.sleep(min(self.poll_seconds, 1.0))
            live = self.queue.states(list(self.tracked))
            for job_id, line in list(self.tracked.items()):
                if job_id not in live:
                    del self.tracked[job_id]
                    outcome = self._outcome(job_id, line)
                    if outcome is not None:
                        ended.append((line, outcome))
        if self.tracked:
            logger.warning("Slurm jobs %s did not end within %.0f s of scancel; a rerun "
                           "re-attaches to them while they are queued.",
                           " ".join(sorted(self.tracked)), _CANCEL_GRACE_SECONDS)
        return ended

    def close(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None
        if self._made_folder and os.path.isdir(self.options.folder) and set(
                os.listdir(self.options.folder)) <= {runs.LOCK_FILE, runs.LOCK_FILENAME}:
            # Made by this run, which submitted nothing (refused, or interrupted).
            shutil.rmtree(self.options.folder, ignore_errors=True)

