"""Batches on a Ray cluster: each line a Ray task that runs the runner on a worker.

The task (`_line_task`) calls `batch.run_line`, so a line's log, record, skipping
and locking are exactly those of a local batch. The output directories must be
on a filesystem every node sees at the same path: `check_shared_filesystem`
proves it before anything runs. Ray is an optional extra, imported only here.
"""

import logging
import os
import socket
import subprocess
import sys
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lottery_ticket.cli import batch
from lottery_ticket.cli import reaper
from lottery_ticket.cli.batch import Line, Outcome

logger = logging.getLogger("lottery_ticket")

_WAIT_SECONDS = 1.0
_CANCEL_GRACE_SECONDS = 15.0
_PROBE_SECONDS = 120.0
_CONNECT_SECONDS = 15.0


def import_ray() -> Any:
    """The ray module, or a ValueError saying how to install it."""
    return batch.import_extra("ray", "ray", "ray")


def _line_task(line: Line, runner_module: str, cwd: str, cpus: int, attempt: str) -> Outcome:
    """A line, on a Ray worker: the runner as a subprocess of this worker."""
    # Ray sets CUDA_VISIBLE_DEVICES for the task's GPUs in this process's environment,
    # which the runner inherits; the thread counts follow the CPUs the task holds.
    return batch.run_line(line, runner_module, sys.executable,
                          batch.thread_environment(cpus), cwd=cwd, attempt=attempt)


def _probe_task(directory: str, driver_name: str, token: str) -> Tuple[str, str]:
    """On one node: reads the driver's probe file and writes this node's."""
    host = socket.gethostname()
    try:
        with open(os.path.join(directory, driver_name), encoding="utf-8") as f:
            if f.read() != token:
                return host, "read a different probe file than the driver wrote"
    except OSError as error:
        return host, f"cannot read the driver's probe file ({error})"
    name = f".batch_probe_{token}_{uuid.uuid4().hex[:8]}"
    try:
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(token)
    except OSError as error:
        return host, f"cannot write there ({error})"
    return host, name


def resolve_address(ray: Any, address: str) -> str:
    """HOST:PORT of the cluster an address names: 'auto' means RAY_ADDRESS or the
    last `ray start` on this machine (/tmp/ray/ray_current_cluster), as for ray.init.

    Raises:
      ValueError: 'auto' finds no cluster, or the address does not parse.
    """
    if "://" in address:
        return address.split("://", 1)[1].rstrip("/")
    try:
        where = ray._private.services.canonicalize_bootstrap_address(  # pylint: disable=W0212
            address)
    except Exception as error:  # pylint: disable=broad-except
        raise ValueError(f"--ray_address={address}: {str(error).strip()}") from error
    if where is None:
        raise ValueError(f"--ray_address={address} names no cluster; leave --ray_address "
                         "out to start a local Ray instance.")
    return where


def check_reachable(where: str, address: str,
                    seconds: float = _CONNECT_SECONDS) -> None:
    """Proves, within `seconds`, that a gRPC server (a Ray GCS or Ray Client server)
    answers at HOST:PORT: it must answer the HTTP/2 connection preface with its
    SETTINGS frame. Interruptible (plain socket calls).

    Raises:
      ValueError: nothing answers, or something that is not gRPC; names the flag.
    """
    host, _, port = where.rpartition(":")
    fix = ("start the cluster (ray start --head) or correct --ray_address; without "
           "--ray_address the batch starts a local Ray instance of its own.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds) as s:
            if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                return  # a TLS handshake first: the TCP connection is all we check
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(
                [0, 0, 0, 4, 0, 0, 0, 0, 0]))
            frame = b""
            while len(frame) < 9:
                chunk = s.recv(9 - len(frame))
                if not chunk:
                    break
                frame += chunk
    except (OSError, ValueError) as error:
        why = (f"no answer within {seconds:.0f} s" if isinstance(error, socket.timeout)
               else getattr(error, "strerror", None) or str(error))
        raise ValueError(f"--ray_address={address}: no Ray cluster answers at {where} "
                         f"({why}); {fix}") from error
    if len(frame) < 9 or frame[3] != 4:
        raise ValueError(f"--ray_address={address}: what answers at {where} is not a Ray "
                         f"cluster (no gRPC); {fix}")


def shared_root(lines: Sequence[Line]) -> str:
    """The deepest directory holding every line's output directory."""
    parents = [os.path.dirname(os.path.abspath(line.output_dir)) for line in lines]
    return os.path.commonpath(parents)


def check_shared_filesystem(ray: Any, directory: str) -> None:
    """Proves that every alive node sees `directory` as this process does.

    The driver writes a probe file there; one task per node reads it and writes
    its own, which the driver then reads.

    Raises:
      ValueError: a node cannot read or write there, or the driver cannot see
        what a node wrote; the message names the node and the fix.
    """
    from ray.util.scheduling_strategies import (  # pylint: disable=import-outside-toplevel
        NodeAffinitySchedulingStrategy)
    os.makedirs(directory, exist_ok=True)
    token = uuid.uuid4().hex
    driver_name = f".batch_probe_{token}_driver"
    driver_path = os.path.join(directory, driver_name)
    batch.save_restore.write_bytes_atomically(driver_path, token.encode())
    fix = ("put the output directories on a filesystem every node mounts at the same "
           "path (NFS, Lustre, ...), or run the batch with --backend=local.")
    written = []
    try:
        probe = ray.remote(num_cpus=0)(_probe_task)
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(directory, driver_name, token)
            for node in nodes]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=_PROBE_SECONDS)
        if len(ready) < len(refs):
            raise ValueError(f"the shared-filesystem check did not finish within "
                             f"{_PROBE_SECONDS:.0f} s on {len(refs) - len(ready)} Ray "
                             "node(s); are their workers alive?")
        for node, (host, result) in zip(nodes, ray.get(refs)):
            if not result.startswith(".batch_probe_"):
                raise ValueError(f"Ray node {host} ({node['NodeManagerAddress']}) does not "
                                 f"share the output directory {directory}: it {result}; "
                                 f"{fix}")
            written.append(os.path.join(directory, result))
            if not os.path.isfile(written[-1]):
                raise ValueError(f"a file Ray node {host} ({node['NodeManagerAddress']}) "
                                 f"wrote in {directory} is not there for this process: "
                                 f"{directory} is not shared; {fix}")
    finally:
        for path in written + [driver_path]:
            try:
                os.remove(path)
            except OSError:
                pass


class RayEngine(batch.Engine):
    """Each line a Ray task holding `cpus_per_line` CPUs and `gpus_per_line` GPUs.

    Args:
      runner_module: the runner.
      address: 'auto', 'HOST:PORT' or 'ray://HOST:PORT' of a running cluster; None
        starts a new local Ray instance on 127.0.0.1 with `local_cpus` CPUs (never
        one that RAY_ADDRESS or an earlier `ray start` names).
      cpus_per_line, gpus_per_line: resources per line (the scheduler runs as many
        lines at once as the cluster holds).
      max_running: at most this many lines submitted at once (None: all).
      local_cpus: CPUs of a local instance (default: this machine's).
    """

    name = "Ray"

    def __init__(self, runner_module: str, address: Optional[str] = None,
                 cpus_per_line: int = 1, gpus_per_line: float = 0,
                 max_running: Optional[int] = None, local_cpus: Optional[int] = None):
        self.ray = import_ray()
        self.runner_module = runner_module
        self.address = address
        self.cpus_per_line = cpus_per_line
        self.gpus_per_line = gpus_per_line
        self.max_running = max_running
        self.local_cpus = local_cpus or os.cpu_count() or 1
        self.attempt = f"ray batch {uuid.uuid4().hex[:8]}"
        self.waiting: List[Line] = []
        self.in_flight: Dict[Any, Line] = {}  # ObjectRef -> its line
        self.started_ray = False
        self.reaper: Optional[subprocess.Popen] = None
        self._capacity = 1

    def start(self, lines: List[Line]) -> None:
        ray = self.ray
        # Set first: a start interrupted inside ray.init still shuts Ray down.
        self.started_ray = True
        if self.address:
            where = resolve_address(ray, self.address)
            logger.info("connecting to the Ray cluster at %s (%s)", self.address, where)
            # ray.init retries an unreachable cluster for minutes, in calls that
            # hold off Ctrl-C: a bounded check of our own goes first.
            check_reachable(where, self.address)
            try:
                ray.init(address=self.address, log_to_driver=False)
            except (ConnectionError, RuntimeError) as error:
                raise ValueError(f"--ray_address={self.address}: cannot connect to the Ray "
                                 f"cluster at {where} ({error}).") from error
        else:
            logger.info("starting a local Ray instance with %d CPUs", self.local_cpus)
            # Ray's helpers outlive a driver killed with SIGKILL by over a minute (and
            # a line's runner with them): the reaper stops them when this process dies.
            self.reaper = reaper.start()
            # "local": a new instance even where RAY_ADDRESS or a `ray start` on this
            # machine names a cluster (which would refuse num_cpus).
            ray.init(address="local", num_cpus=self.local_cpus, include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False)
        resources = ray.cluster_resources()
        self._check_fits(resources)
        self._capacity = max(1, int(resources.get("CPU", 1) // max(self.cpus_per_line, 1)))
        if self.gpus_per_line:
            self._capacity = min(self._capacity, max(1, int(
                resources.get("GPU", 0) // self.gpus_per_line)))
        lines = [line.absolute() for line in lines]
        check_shared_filesystem(ray, shared_root(lines))
        self.task = ray.remote(_line_task).options(
            num_cpus=self.cpus_per_line, num_gpus=self.gpus_per_line, max_retries=0)
        self.waiting = lines
        self._submit()

    def _check_fits(self, resources: Dict[str, float]) -> None:
        for name, wanted, flag in (("CPU", self.cpus_per_line, "cpus_per_line"),
                                   ("GPU", self.gpus_per_line, "gpus_per_line")):
            # The largest node decides, as a line runs on one node.
            most = max((node.get("Resources", {}).get(name, 0)
                        for node in self.ray.nodes() if node.get("Alive")), default=0)
            if wanted > most:
                raise ValueError(f"--{flag}={wanted:g} but no Ray node has more than "
                                 f"{most:g} {name}s (the cluster has "
                                 f"{resources.get(name, 0):g}); lower --{flag}.")

    def _submit(self) -> None:
        cwd = os.getcwd()
        while self.waiting and (self.max_running is None
                                or len(self.in_flight) < self.max_running):
            line = self.waiting.pop(0)
            ref = self.task.remote(line, self.runner_module, cwd, self.cpus_per_line,
                                   self.attempt)
            self.in_flight[ref] = line

    def poll(self) -> List[Tuple[Line, Outcome]]:
        if not self.in_flight:
            return []
        ready, _ = self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight),
                                 timeout=_WAIT_SECONDS)
        ended = [(self.in_flight.pop(ref), self._outcome(ref)) for ref in ready]
        self._submit()
        return ended

    def _outcome(self, ref: Any) -> Outcome:
        try:
            return self.ray.get(ref)
        except Exception as error:  # pylint: disable=broad-except
            # A worker or node that died, or a task cancelled by hand: the line's own
            # record (running) says nothing more, so the reason goes in the summary.
            return Outcome(batch.FAILED, None, 0.0,
                           f"the Ray task ended without a result: {type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''}")

    def unfinished(self) -> int:
        return len(self.in_flight) + len(self.waiting)

    def counts(self) -> Tuple[int, int]:
        # A task is running once its attempt wrote the line's `running` record.
        running = 0
        for line in self.in_flight.values():
            record = batch.read_record(line)
            if record and record.get("status") == batch.RUNNING and record.get(
                    "attempt") == self.attempt:
                running += 1
        return running, len(self.in_flight) - running + len(self.waiting)

    def parallelism(self) -> int:
        if self.max_running:
            return min(self._capacity, self.max_running)
        return self._capacity

    def stop(self) -> List[Tuple[Line, Outcome]]:
        ray = self.ray
        ended = []
        refs = list(self.in_flight)
        if not refs:
            # Nothing submitted (stopped while connecting, say): no Ray call, as any
            # would start or join a cluster (Ray's auto-init: ray_current_cluster).
            self.waiting.clear()
            return ended
        # A polite cancel first: the task's run_line stops its runner (SIGTERM to its
        # process group) and records the line as stopped; then force, which kills
        # the worker (its runner gets SIGTERM as its parent dies).
        for ref in refs:
            ray.cancel(ref, force=False)
        ready, rest = ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_GRACE_SECONDS)
        for ref in rest:
            ray.cancel(ref, force=True)
        if rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=_CANCEL_GRACE_SECONDS)[0]
        for ref in ready:
            outcome = self._outcome(ref)
            if outcome.status == batch.DONE:
                ended.append((self.in_flight[ref], outcome))
        self.in_flight.clear()
        self.waiting.clear()
        return ended

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()
        if self.reaper is not None:
            self.reaper.stdin.close()  # it stops whatever shutdown left behind
