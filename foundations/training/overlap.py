"""What the overlap_evaluation setting ('auto', 'on', 'off') means for a run.

With overlap, a single run evaluates a copy of its network (taken at the
evaluation iteration) on a second Python thread while the main thread trains
the next iterations; TensorFlow releases the GIL while its kernels run, so
on a machine with a core that training leaves idle the evaluation costs
little wall time. The recorded numbers are those of the evaluation iteration,
bit for bit (see loop.run_loop).
"""

import concurrent.futures
import os
import threading
from typing import Any, Optional

import tensorflow as tf

OVERLAP_CHOICES = ("auto", "on", "off")

# What 'auto' means where this variable is set to 'on' or 'off'. The batch runner
# sets it to 'off' in its workers: they fill every core between them, so no core is
# idle for an evaluation to use.
OVERLAP_AUTO_VARIABLE = "LOTTERY_TICKET_OVERLAP_AUTO"

_THREAD: Optional[concurrent.futures.ThreadPoolExecutor] = None
_THREAD_LOCK = threading.Lock()


def check_overlap(setting: Any) -> str:
    """The setting as 'auto', 'on' or 'off' (True and False mean 'on' and 'off').

    Raises:
      ValueError: an unknown setting.
    """
    if setting is True or setting is False:
        return "on" if setting else "off"
    if setting not in OVERLAP_CHOICES:
        raise ValueError(f"overlap_evaluation is {setting!r}; it must be one of "
                         f"{', '.join(OVERLAP_CHOICES)} (auto: evaluate on an idle core "
                         "while training goes on, where the run leaves one idle).")
    return setting


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def thread_setting(name: str) -> int:
    """TensorFlow's intra- or inter-op thread count as set in this process (0: its
    default, which is every core), from tf.config or the environment variable
    TensorFlow reads (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS)."""
    getter = (tf.config.threading.get_intra_op_parallelism_threads if name == "intra"
              else tf.config.threading.get_inter_op_parallelism_threads)
    value = getter()
    if not value:
        variable = "TF_NUM_INTRAOP_THREADS" if name == "intra" else "TF_NUM_INTEROP_THREADS"
        try:
            value = int(os.environ.get(variable, "0"))
        except ValueError:
            value = 0
    return max(0, int(value))


def resolve_overlap(setting: Any) -> bool:
    """Whether a single run evaluates on a second thread while it trains.

    'on' always, 'off' never. 'auto' where it can gain: on a CPU-only machine
    with more than one core whose TensorFlow kernels are limited to fewer
    threads than the cores (--threads=1, say: the LeNet loop is fastest on
    one). The two computations then run side by side, also with one inter-op
    thread (measured: bench/bench_trial.py --threads=1); with TensorFlow's
    default of a thread per core they compete for the cores and the overlap
    is slower. The environment variable
    LOTTERY_TICKET_OVERLAP_AUTO=on|off makes 'auto' mean that instead (the
    batch runner sets off: its workers fill every core).

    Raises:
      ValueError: an unknown setting, or LOTTERY_TICKET_OVERLAP_AUTO set to one.
    """
    setting = check_overlap(setting)
    if setting != "auto":
        return setting == "on"
    forced = os.environ.get(OVERLAP_AUTO_VARIABLE, "auto")
    if forced != "auto":
        if forced not in ("on", "off"):
            raise ValueError(f"{OVERLAP_AUTO_VARIABLE} is {forced!r}; it must be auto, on or "
                             "off (what overlap_evaluation=auto means in this environment).")
        return forced == "on"
    available = cores()
    if available < 2 or tf.config.list_logical_devices("GPU"):
        return False
    return (thread_setting("intra") or available) < available


def evaluation_thread() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that runs overlapped evaluations (made when first needed)."""
    global _THREAD
    with _THREAD_LOCK:
        if _THREAD is None:
            _THREAD = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="lottery_ticket-evaluation")
        return _THREAD
