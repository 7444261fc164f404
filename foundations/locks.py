"""Locks on trial and run directories: one process writes a run at a time.

A lock is an fcntl.flock on ``{directory}/.lock`` (paths.LOCK_FILE), a file
created once and never written; ``.locked_by`` (paths.LOCK_FILENAME) names the
holder while it is held. Reading finished runs back needs no write access: in a
tree this process cannot write, `lock` takes a shared lock on an existing lock
file, or none.
"""

import contextlib
import datetime
import errno
import fcntl
import os
import socket
from typing import Iterator

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore

LOCK_FILE = paths.LOCK_FILE
LOCK_FILENAME = paths.LOCK_FILENAME
MARKER_FILENAME = paths.MARKER_FILENAME


class LockedError(RuntimeError):
    """Another process holds a trial's or a run's lock."""


@contextlib.contextmanager
def lock(directory: str, what: str = "run") -> Iterator[None]:
    """Holds an exclusive lock on a trial or run directory while the block runs.

    The lock is an fcntl.flock on {directory}/.lock, a file that is created
    once and never written (so no file of a finished run changes). flock is
    released when the holding process ends in any way, so a lock left by a
    dead process never blocks; on NFS, Linux turns it into a lock on the
    server, which holds across machines. While it is held, {directory}/
    .locked_by names the holder, for the message another process gets. If no
    run started in the directory (the work was refused first), the lock file,
    and the directory if this call made it, are removed again.

    Args:
      directory: the trial or run directory (created if missing).
      what: what the directory holds, as the message names it ('run', 'trial').

    Raises:
      LockedError: another process holds it; the message names its pid and host.
      FileExistsError: `directory` is a file.
    """
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise FileExistsError(f"{directory} is a file, not a directory: choose another "
                              "output directory.")
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    holder_path = os.path.join(directory, LOCK_FILENAME)
    lock_path = os.path.join(directory, LOCK_FILE)
    new_lock = not os.path.exists(lock_path)
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        # A tree this process may not write (read-only, or another user's): reading
        # its complete runs back needs no lock, as they never change; anything that
        # would write fails on its first file with the same error.
        with _read_only_lock(lock_path, directory, what):
            yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            try:
                with open(holder_path, encoding="utf-8") as f:
                    holder = f.read().strip()
            except OSError:
                holder = "pid unknown"
            raise LockedError(
                f"the {what} in {directory} is in use by another process ({holder}); "
                "two runners on one directory would corrupt it. Wait for that one to "
                "finish (or stop it), or use another output directory.") from None
        stamp = datetime.datetime.now().isoformat(timespec="seconds")
        save_restore.write_bytes_atomically(holder_path, (
            f"pid {os.getpid()} on host {socket.gethostname()} since {stamp}").encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.remove(holder_path)
            # Refused before any work (no run started here): leave no trace.
            if new_lock and not os.path.exists(os.path.join(directory, MARKER_FILENAME)):
                with contextlib.suppress(OSError):
                    os.remove(lock_path)
                    if created:
                        os.rmdir(directory)
    finally:
        os.close(handle)  # releases the lock


@contextlib.contextmanager
def _read_only_lock(lock_path: str, directory: str, what: str) -> Iterator[None]:
    """lock() where the lock file cannot be written: a writer elsewhere that holds
    an existing lock file is still respected (flock needs only a read handle)."""
    try:
        handle = os.open(lock_path, os.O_RDONLY)
    except OSError:
        yield  # no lock file, none can be made: nobody can lock this tree either
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise LockedError(
                f"the {what} in {directory} is in use by another process; wait for it "
                "to finish (or stop it).") from None
        yield
    finally:
        os.close(handle)


def remove_stale_holder(directory: str) -> None:
    """Removes the holder file a killed process left.

    Removes the .locked_by a killed process left (it had no time to), where
    nobody holds the lock now; a directory that cannot be written keeps it.

    Args:
      directory: the trial or run directory.
    """
    holder = os.path.join(directory, LOCK_FILENAME)
    if not os.path.exists(holder):
        return
    try:
        handle = os.open(os.path.join(directory, LOCK_FILE), os.O_RDONLY)
    except OSError:
        handle = None  # no lock file: nobody can hold it
    try:
        if handle is not None:
            try:
                # Held while removing, so no new holder writes its name meanwhile.
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # held (perhaps by this process): its holder removes the file
        with contextlib.suppress(OSError):
            os.remove(holder)
    finally:
        if handle is not None:
            os.close(handle)
