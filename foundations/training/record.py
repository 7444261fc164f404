"""What a run records: metrics, done.json, divergence, and the result in memory."""

import logging
import math
import os
import platform
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

Metrics = Dict[str, Dict[str, list]]


class Recorder:
    """Keeps one run's metrics in memory, in TensorBoard and in metrics.json."""

    def __init__(self, output_dir: str, save_summaries: bool):
        self.output_dir = output_dir
        self.metrics: Metrics = {}
        self.writer = (tf.summary.create_file_writer(paths.summaries(output_dir))
                       if save_summaries else None)

    def add(self, split: str, iteration: int, loss: float, accuracy: float) -> None:
        """Records a split's loss and accuracy at an iteration."""
        record = self.metrics.setdefault(split, {"iteration": [], "loss": [], "accuracy": []})
        record["iteration"].append(int(iteration))
        record["loss"].append(float(loss))
        record["accuracy"].append(float(accuracy))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.scalar(f"{split}/loss", float(loss), step=iteration)
                tf.summary.scalar(f"{split}/accuracy", float(accuracy), step=iteration)

    def latest(self) -> Dict[str, Dict[str, float]]:
        """Each split's last record: {split: {iteration, loss, accuracy}}."""
        return {split: {"iteration": r["iteration"][-1], "loss": r["loss"][-1],
                        "accuracy": r["accuracy"][-1]}
                for split, r in self.metrics.items() if r["iteration"]}

    def save(self) -> None:
        """Writes metrics.json (atomically)."""
        save_restore.write_json(paths.metrics(self.output_dir), self.metrics)

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer (again: nothing)."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def mean_latest(recorders: Sequence[Recorder],
                members: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """Each split's latest loss and accuracy, averaged over `members` (for one
    member, its own numbers)."""
    latest = [recorders[k].latest() for k in members]
    if not latest:
        return {}
    merged = {}
    for split, values in latest[0].items():
        rows = [entry[split] for entry in latest if split in entry]
        merged[split] = {"iteration": values["iteration"],
                         "loss": float(np.mean([r["loss"] for r in rows])),
                         "accuracy": float(np.mean([r["accuracy"] for r in rows]))}
    return merged


def divergence(output_dir: str, iteration: int, losses: Mapping[str, float],
               weights_finite: bool) -> Optional[str]:
    """Why a run diverged at `iteration` (a loss or a weight is not finite), or None."""
    for split, loss in losses.items():
        if not math.isfinite(loss):
            logger.warning("%s: the %s loss is %s at iteration %d.", output_dir, split, loss,
                           iteration)
            return f"{split} loss {loss}"
    if not weights_finite:
        return "non-finite weights"
    return None


def op_determinism() -> Any:
    """Whether tf.config.experimental.enable_op_determinism() is in force, if knowable."""
    try:  # TensorFlow has no public reader for this setting.
        from tensorflow.python.framework import config as framework_config
        return bool(framework_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return "unknown"


def write_record(output_dir: str, *, total: int, training_len: Sequence, seconds: float,
                 model: ModelBase, dataset: DatasetBase,
                 final_metrics: Dict[str, Dict[str, float]],
                 run_info: Optional[Mapping], start_iteration: int = 0,
                 snapshot_iterations: Sequence[int] = (),
                 snapshot_layers: Sequence[str] = (),
                 xla: Optional[Mapping[str, Any]] = None,
                 speed: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Writes done.json, whose presence marks the run in `output_dir` complete.

    Returns:
      What it wrote, with the format version.
    """
    record = {
        "iterations": total,
        "training_len": list(training_len),
        "seconds": seconds,
        "iterations_per_second": (total - start_iteration) / max(seconds, 1e-9),
        "model_seed": model.seed,
        "train_order_seed": dataset.train_order_seed,
        "train_batch_size": dataset.train_batch_size,
        "final": final_metrics,
        "mask_counts": runs.mask_counts(model.masks),
        "tensorflow": tf.__version__,
        # Both decide which kernels ran, so both are needed to repeat the numbers.
        "op_determinism": op_determinism(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "python": platform.python_version(),
        "run_info": dict(run_info or {}),
    }
    if xla is not None:
        # Like the kernels above, it decides the last bits of the numbers.
        record["xla"] = dict(xla)
    if speed is not None:
        record.update(speed)
    # Only when used, so that a run without them records exactly what it did before.
    if start_iteration:
        record["start_iteration"] = int(start_iteration)
    if snapshot_iterations:
        record["snapshot_iterations"] = sorted(int(k) for k in snapshot_iterations)
        # What each rewind{K}/ must hold, so that one missing file is found on reading.
        record["snapshot_layers"] = sorted(snapshot_layers)
    runs.write_done(output_dir, record)
    return dict(record, format_version=runs.FORMAT_VERSION)


class TrainResult(tuple):
    """(initial_weights, final_weights), with the run's metrics and record.

    Unpacks as a pair, as `initial, final = train(...)` expects; also has

    * ``initial``, ``final``: dicts layer name -> effective kernel;
    * ``metrics``: {split: {"iteration": [...], "loss": [...], "accuracy":
      [...]}}, the numbers written to metrics.json;
    * ``record``: the contents of done.json;
    * ``output_dir``: where the run was written;
    * ``snapshots``: iteration -> effective kernels and biases (under
      model_base.bias_key(layer)) at that iteration, for each of train()'s
      snapshot_iterations.
    """

    initial: Network
    final: Network
    metrics: Metrics
    record: Dict[str, Any]
    output_dir: str
    snapshots: Dict[int, Network]

    def __new__(cls, initial: Network, final: Network, metrics: Metrics,
                record: Dict[str, Any], output_dir: str,
                snapshots: Optional[Dict[int, Network]] = None) -> "TrainResult":
        result = super().__new__(cls, (initial, final))
        result.initial, result.final = initial, final
        result.metrics, result.record, result.output_dir = metrics, record, output_dir
        result.snapshots = dict(snapshots or {})
        return result

    def __getnewargs__(self):
        return (self.initial, self.final, self.metrics, self.record, self.output_dir,
                self.snapshots)


class CompileTimer:
    """How long an engine's calls took, split into calls that traced (and so
    compiled) and calls that did not, per compiled function.

    The time spent compiling is estimated as each tracing call's time less
    what the same work (`units`: steps, or whole evaluations) took at the rate
    of the calls that did not trace; done.json records it as compile_seconds.
    """

    def __init__(self):
        self._timing: Dict[str, Dict[str, Any]] = {}

    def reset(self) -> None:
        """Forgets every call (a new run starts)."""
        self._timing = {}

    def add(self, name: str, traced: bool, seconds: float, units: int) -> None:
        """Records one call of the function `name`."""
        timing = self._timing.setdefault(name, {"traced": [], "seconds": 0.0, "units": 0})
        if traced:
            timing["traced"].append((seconds, units))
        else:
            timing["seconds"] += seconds
            timing["units"] += units

    def steady(self, name: str) -> Tuple[float, int]:
        """(seconds, units) of the calls of `name` that did not trace."""
        timing = self._timing.get(name, {"seconds": 0.0, "units": 0})
        return timing["seconds"], timing["units"]

    def compile_seconds(self) -> float:
        """The estimated time spent tracing and compiling since the last reset."""
        total = 0.0
        for timing in self._timing.values():
            rate = timing["seconds"] / timing["units"] if timing["units"] else 0.0
            total += sum(max(0.0, seconds - units * rate) for seconds, units in timing["traced"])
        return total

    def seconds(self, prefix: str) -> float:
        """The time of every call (tracing ones included) of the functions whose
        names start with `prefix` ('train_steps', 'evaluate')."""
        return sum(timing["seconds"] + sum(seconds for seconds, _ in timing["traced"])
                   for name, timing in self._timing.items() if name.startswith(prefix))

    def speed_record(self) -> Dict[str, Any]:
        """What done.json records of a run's speed besides its total time: the time
        compiling, and the time in training steps and in evaluation (each with
        its compiling), so that a benchmark can tell them apart."""
        return {"compile_seconds": round(self.compile_seconds(), 4),
                "training_seconds": round(self.seconds("train_steps"), 4),
                "evaluation_seconds": round(self.seconds("evaluate"), 4)}
