"""Saving and restoring networks, masks and results, atomically.

A network (or a set of masks) is a dict from layer name to numpy array, stored
on disk as one ``{layer}.npy`` file per layer in a directory. Every file is
written under a temporary name in the same directory and then renamed over
its final name, so an interrupted write never leaves a file that looks whole.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

# The one type of a network, a set of masks or of presets: layer name -> array.
Network = Dict[str, np.ndarray]
NetworkLike = Union[None, str, os.PathLike, Dict[str, np.ndarray], Sequence]

_LAYER_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def apply_umask(path: str) -> None:
    """Gives a file made by tempfile (mode 0600) the mode the process's umask asks for.

    Args:
      path: the file.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class DiskFullError(OSError):
    """A result could not be written because its file system is full.

    An OSError with errno ENOSPC, so callers that handle OSError still do; its
    message names the file, the free space and, once known (with_need), how
    much the whole run needs.

    Args:
      path: the file that could not be written.
      free: the free bytes of its file system, if known.
      needed: the bytes the whole run needs, if known.
    """

    def __init__(self, path: str, free: Optional[int], needed: Optional[int] = None):
        self.path, self.free, self.needed = path, free, needed
        free_text = "unknown" if free is None else _megabytes(free)
        need_text = "" if needed is None else f"; the run needs about {_megabytes(needed)}"
        super().__init__(
            errno.ENOSPC,
            f"the disk is full: writing {path} failed ({free_text} free there{need_text}). "
            "Free some space (or choose another output directory) and rerun the same "
            "command: finished runs are kept and the interrupted one resumes from its start")

    def __str__(self) -> str:
        return self.strerror

    def with_need(self, needed: int) -> "DiskFullError":
        """The same error, saying how many bytes the whole run needs.

        Args:
          needed: the bytes the whole run needs.
        """
        return DiskFullError(self.path, self.free, needed)


def is_disk_full(error: BaseException) -> bool:
    """Whether an error says the disk (or a quota) is full.

    ENOSPC or EDQUOT, or numpy's short write ('N requested and M written', which has no
    errno).

    Args:
      error: the error raised by a write.
    """
    if not isinstance(error, OSError):
        return False
    if isinstance(error, DiskFullError) or error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return error.errno is None and bool(re.search(r"\d+ requested and \d+ written",
                                                  str(error)))


def disk_full_error(path: str) -> DiskFullError:
    """A DiskFullError for `path`, with the free space of its file system now.

    Args:
      path: the file that could not be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = None
    return DiskFullError(path, free)


@contextlib.contextmanager
def disk_need(needed: Callable[[], Optional[int]]) -> Iterator[None]:
    """Adds to a DiskFullError raised in the block what the whole run needs.

    Args:
      needed: called only on a full disk; the bytes the run writes (None: unknown).

    Raises:
      DiskFullError: the disk filled during the block; the message says what the run needs.
    """
    try:
        yield
    except DiskFullError as error:
        total = None if error.needed is not None else needed()
        if total is None:
            raise
        raise error.with_need(total) from error.__cause__


def _write_atomically(path: str, write: Callable) -> None:
    """Calls write(file_object) on a temporary file, then renames it to path.

    Raises:
      DiskFullError: the file system is full (the temporary file is removed).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as error:
        if is_disk_full(error):
            raise disk_full_error(path) from error
        raise
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes files private; results are shared as the umask says.
        apply_umask(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        if is_disk_full(error):
            raise disk_full_error(path) from error
        raise


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Writes bytes to path atomically (temporary file, then rename).

    Args:
      path: the file.
      data: its content.
    """
    _write_atomically(path, lambda f: f.write(data))


def write_json(path: str, value: Any) -> None:
    """Writes a JSON-serializable value to path atomically.

    Args:
      path: the file.
      value: a JSON-serializable value (numpy values and callables too; see json_default).
    """
    text = json.dumps(value, indent=1, sort_keys=True, default=json_default)
    write_bytes_atomically(path, text.encode("utf-8"))


def read_json(path: str) -> Any:
    """Reads a JSON file.

    Args:
      path: the file.
    """
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def json_default(value: Any) -> Any:
    """JSON form of numpy values and callables (by name); TypeError otherwise.

    Args:
      value: a value json cannot write itself.

    Raises:
      TypeError: a value of another type.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if callable(value):
        return getattr(value, "__name__", repr(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_network(directory: str, network: Network) -> None:
    """Saves a network (layer name -> array) as one .npy file per layer.

    Args:
      directory: the directory (created if needed).
      network: layer name -> array.

    Raises:
      ValueError: a layer name that cannot be a file name.
    """
    os.makedirs(directory, exist_ok=True)
    for name, value in network.items():
        if not _LAYER_NAME.match(name):
            raise ValueError(
                f"layer name {name!r} cannot be a file name: use letters, digits, "
                "'_', '.' and '-'.")
        array = np.asarray(value)
        _write_atomically(os.path.join(directory, name + ".npy"),
                          lambda f, a=array: np.save(f, a, allow_pickle=False))


def restore_network(directory: str) -> Network:
    """Loads a network saved by save_network: a dict layer name -> array.

    Args:
      directory: the directory save_network wrote.

    Raises:
      FileNotFoundError: no such directory, or no .npy files in it.
      ValueError: a file that cannot be read as an array.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no saved network at {directory!r}: expected a directory of "
            "{layer}.npy files (e.g. a run's initial/, final/ or masks/).")
    network = {}
    for filename in sorted(os.listdir(directory)):
        if filename.endswith(".npy") and not filename.startswith("."):
            path = os.path.join(directory, filename)
            try:
                network[filename[:-4]] = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as error:
                raise ValueError(f"{path} cannot be read as a layer's array ({error}); the "
                                 "file is damaged or not a saved array.") from error
    if not network:
        raise FileNotFoundError(f"no .npy layer files in {directory!r}.")
    return network


def standardize(network: NetworkLike,
                combine_fn: Optional[Callable[[List[Network]], Network]] = None
                ) -> Optional[Network]:
    """Turns any way of naming a network into a dict layer name -> array.

    Args:
      network: None (returned as None), a dict, a directory saved by
        save_network, or a list/tuple of those.
      combine_fn: for a list, combines the standardized networks into one
        (for example union.union); required when the list has several items.

    Returns:
      A dict of numpy arrays, or None.

    Raises:
      ValueError: an empty list, or several networks without a combine_fn.
      TypeError: a value of another type.
    """
    if network is None:
        return None
    if isinstance(network, (str, os.PathLike)):
        return restore_network(os.fspath(network))
    if isinstance(network, dict):
        return {name: np.asarray(value) for name, value in network.items()}
    if isinstance(network, (list, tuple)):
        networks = [standardize(item) for item in network]
        if not networks:
            raise ValueError("cannot standardize an empty list of networks.")
        if len(networks) == 1 and combine_fn is None:
            return networks[0]
        if combine_fn is None:
            raise ValueError(
                f"got {len(networks)} networks but no combine_fn: pass one, e.g. "
                "combine_fn=union.union, to say how they combine.")
        return combine_fn(networks)
    raise TypeError(
        f"cannot standardize a {type(network).__name__}: pass a dict, a "
        "directory path, a list of those, or None.")


# The suffix of a bias's key ('{layer}.bias', model_base.bias_key) and so of its file.
BIAS_SUFFIX = ".bias"


# The suffixes of the other values a network saves beside its kernels: biases, and
# batch normalization's (a Keras model's '{layer}.gamma', foundations.keras_model).
NON_KERNEL_SUFFIXES = (BIAS_SUFFIX, ".gamma", ".beta", ".moving_mean", ".moving_variance")


def is_kernel(name: str) -> bool:
    """Whether a saved network's entry is a layer's kernel (masks/ holds one per kernel).

    Args:
      name: the entry's name.
    """
    return not name.endswith(NON_KERNEL_SUFFIXES)


def kernels_only(network: Network) -> Network:
    """`network` without its biases and batch normalization values.

    What pruning, masks and a ticket's layer-by-layer checks work on ('{layer}.bias' entries
    left out). initial/ and final/ hold the biases too since they were saved whole; runs
    saved before hold none.

    Args:
      network: name -> array, as restore_network returns it.
    """
    return {name: value for name, value in network.items() if is_kernel(name)}
