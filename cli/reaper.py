"""Stops what a process started when that process dies, however it dies.

    python -m lottery_ticket.cli.reaper PID    (its standard input a pipe from PID)

A local Ray instance's helpers (its dashboard and runtime-env agents, among
others) outlive a driver killed with SIGKILL by over a minute, and a line's
runner with them. This watcher, started by the driver in a session of its own
(so that signals to the driver's process group do not reach it), notes every
descendant of PID once a second while PID lives. When its standard input ends
(PID died, or closed the pipe after shutting Ray down) it sends SIGTERM to the
descendants it saw that still run, and SIGKILL to those left after a grace
period. A process is recognised by its pid and start time, so a pid reused by
another process meanwhile is left alone. Linux only (/proc); stdlib only, so
it starts fast.
"""

import os
import select
import signal
import subprocess
import sys
import time
from typing import Dict, Optional, Tuple

_POLL_SECONDS = 1.0
_GRACE_SECONDS = 5.0

Process = Tuple[int, int]  # (pid, start time in clock ticks since boot)


def _stat(pid: int) -> Optional[Tuple[int, int, str]]:
    """(parent pid, start time, state) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19]), fields[0]


def descendants(root: int) -> Dict[int, int]:
    """pid -> start time of every living descendant of `root`."""
    children: Dict[int, list] = {}
    starts = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[2] != "Z":
                children.setdefault(stat[0], []).append(int(name))
                starts[int(name)] = stat[1]
    found, stack = {}, [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = starts[child]
                stack.append(child)
    return found


def _alive(pid: int, start: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] == start and stat[2] != "Z"


def stop(seen: Dict[int, int], grace: float = _GRACE_SECONDS) -> None:
    """SIGTERM to each process of `seen` still running, SIGKILL after `grace` s."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        left = [(pid, start) for pid, start in seen.items() if _alive(pid, start)]
        for pid, _ in left:
            try:
                os.kill(pid, signum)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [(pid, start) for pid, start in left if _alive(pid, start)]


def watch(root: int, poll: float = _POLL_SECONDS) -> None:
    """Notes the descendants of `root` until standard input ends, then stops them."""
    me = os.getpid()
    seen: Dict[int, int] = {}
    while True:
        seen.update({pid: start for pid, start in descendants(root).items() if pid != me})
        ready, _, _ = select.select([sys.stdin.buffer], [], [], poll)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    stop(seen)


def start(root: Optional[int] = None) -> subprocess.Popen:
    """Starts a reaper for `root` (default this process): close its stdin (or
    die) and it stops what `root` started."""
    return subprocess.Popen(
        [sys.executable, "-m", "lottery_ticket.cli.reaper", str(root or os.getpid())],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
