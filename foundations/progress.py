"""How a training run reports its progress: log lines, or a live line in Jupyter.

A run started from a command line logs a line to the 'lottery_ticket' logger
about every ten seconds (the runners print those). A run started in a Jupyter
kernel shows one line that updates in place under the cell, with a progress
bar, because a notebook does not show that logger unless it is configured.
Nothing here imports IPython unless the host already has: outside a kernel the
module costs nothing and changes nothing.
"""

import html
import inspect
import logging
import sys
import time
from typing import Callable, Dict, Mapping, Union

logger = logging.getLogger("lottery_ticket")

Latest = Mapping[str, Mapping[str, float]]
ProgressFn = Callable[[int, int, Dict[str, Dict[str, float]]], None]
# None or True: the default for where the code runs; False: silent; or a function.
Progress = Union[None, bool, ProgressFn]

LOG_SECONDS = 10.0
# A live display can afford to change often, but not on every short chunk.
_DISPLAY_SECONDS = 0.5


def in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter (IPython) kernel."""
    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return False
    try:
        shell = ipython_module.get_ipython()
    except AttributeError:
        return False
    # A terminal IPython has a shell too, but no kernel to display through.
    return shell is not None and getattr(shell, "kernel", None) is not None


def clock(seconds: float) -> str:
    """H:MM:SS.

    Args:
      seconds: a duration.
    """
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def describe(iteration: int, total: int, latest: Latest, seconds: float, label: str = "",
             iterations_after: int = 0, first_iteration: int = 0) -> str:
    """One progress line: iteration, rate, ETA and the latest metrics.

    The rate counts the iterations trained since `first_iteration` (a rewound
    run starts past 0) over `seconds`.

    Args:
      iteration: the iteration reached.
      total: the iteration training ends at.
      latest: split -> {'loss': ..., 'accuracy': ...}, the latest metrics.
      seconds: the time since `first_iteration`.
      label: text put before the line.
      iterations_after: iterations still to come after this run, for the whole ETA.
      first_iteration: the iteration training started at.
    """
    rate = (iteration - first_iteration) / max(seconds, 1e-9)
    parts = [f"{label}iteration {iteration}/{total}", f"{rate:.0f} it/s"]
    if iteration < total or iterations_after:
        eta = f"ETA {clock((total - iteration) / rate)}" if rate > 0 else "ETA unknown"
        if iterations_after and rate > 0:
            eta += f" (whole trial {clock((total - iteration + iterations_after) / rate)})"
        parts.append(eta)
    for split in ("train", "validate", "test"):
        if split in latest:
            parts.append(f"{split} acc {latest[split]['accuracy']:.4f} "
                         f"loss {latest[split]['loss']:.4f}")
    return " | ".join(parts)


class _Line:
    """What the live display shows: a bar and the line, or the line as text."""

    def __init__(self, text: str, iteration: int, total: int):
        self.text, self.iteration, self.total = text, iteration, total

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return (f'<div><progress value="{self.iteration}" max="{max(self.total, 1)}" '
                f'style="width: 30%; vertical-align: middle"></progress> '
                f"<code>{html.escape(self.text)}</code></div>")


class Reporter:
    """Reports one run's progress the way `progress` asks for.

    Args:
      progress: None or True for the default (a live line in a Jupyter
        kernel, log lines elsewhere), False for nothing, or a function
        called as progress(iteration, total, latest_metrics) at every return
        of the compiled loop to Python.
      label: text put before each line (e.g. the level and trial).
      iterations_after: iterations still to come after this run, for the
        whole-trial ETA.

    Raises:
      TypeError: `progress` is not None, a bool or a function.
    """

    def __init__(self, progress: Progress = None, label: str = "", iterations_after: int = 0):
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise TypeError(f"progress must be None, True, False or a function "
                            f"progress(iteration, total, latest); got {progress!r}.")
        self._function = progress if callable(progress) and not isinstance(
            progress, bool) else None
        if self._function is not None:
            _check_callback(self._function)
        self._silent = progress is False
        self._label, self._after = label, iterations_after
        self._display = None
        self._jupyter = (self._function is None and not self._silent
                         and in_jupyter_kernel())
        self._started = time.time()
        self._last = float("-inf")
        self._first = 0

    def start(self, total: int, first_iteration: int = 0) -> None:
        """Marks the start of training at `first_iteration`.

        The rate is measured from here.

        Args:
          total: the iteration training ends at.
          first_iteration: the iteration training starts at.
        """
        self._first = int(first_iteration)
        self._started = time.time()
        self._last = self._started
        if self._jupyter:
            from IPython import display  # pylint: disable=import-outside-toplevel
            self._display = display.display(
                _Line(f"{self._label}starting: {total} iterations", 0, total),
                display_id=True)

    def update(self, iteration: int, total: int, latest: Dict[str, Dict[str, float]]) -> None:
        """Reports the run at `iteration` of `total`.

        Args:
          iteration: the iteration reached.
          total: the iteration training ends at.
          latest: split -> {'loss': ..., 'accuracy': ...}, the latest metrics.
        """
        if self._function is not None:
            self._function(iteration, total, latest)
            return
        if self._silent:
            return
        now = time.time()
        interval = _DISPLAY_SECONDS if self._jupyter else LOG_SECONDS
        if now - self._last < interval and iteration != total:
            return
        self._last = now
        text = describe(iteration, total, latest, now - self._started, self._label,
                        self._after, self._first)
        if self._display is not None:
            self._display.update(_Line(text, iteration, total))
        else:
            logger.info(text)


def _check_callback(function: Callable) -> None:
    """Raises TypeError, before any training, unless `function` takes
    (iteration, total, latest) positionally."""
    try:
        inspect.signature(function).bind(0, 1, {})
    except TypeError as error:
        raise TypeError(f"progress={function!r} cannot be called as progress(iteration, "
                        f"total, latest_metrics): {error}. Give a function of three "
                        "arguments, or False for no progress.") from None
    except ValueError:  # no signature to inspect (some builtins): find out when called
        pass
