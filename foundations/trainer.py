"""Training one network and recording everything about the run.

`train` runs in four parts:

* `prepare_run` checks the arguments, readies the output directory (clearing
  an incomplete run), builds the model and saves initial/ and masks/;
* `CompiledSteps` holds the compiled functions: the training steps over
  batches of indices and the chunked evaluation of a split;
* `_training_loop` runs the iterations, returning to Python at evaluation
  boundaries to record metrics and report progress;
* `_write_record` writes done.json, which marks the run complete.

The iterations between two evaluations run inside one compiled tf.function
(a tf.while_loop over batches of indices into the training set, which stays
on the device), so the Python interpreter is entered once per evaluation,
not once per step.

Compiled functions are traced once per architecture, data set and optimizer
setting in a process and reused by later runs (the levels of a trial, the
controls, a ticket after its dense network in a notebook): the run's values
are assigned into the variables the functions were traced with, and the
trained values are assigned back into the caller's model. A model class
opts in through ``ModelBase.trace_key``.
"""

import collections
import copy
import functools
import inspect
import json
import logging
import math
import os
import platform
import shutil
import threading
import time
import weakref
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import progress as progress_lib
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

ProgressFn = progress_lib.ProgressFn

# Without any evaluation interval, the loop still returns to Python this often
# so that progress can be reported.
_DEFAULT_CHUNK = 1000
# Compiled programs kept per data set (most recently used first out last).
_ENGINES_PER_DATASET = 4


# Raised by train(); defined beside the run records so that command lines need
# not import TensorFlow to recognize it.
DivergedError = runs.DivergedError


def training_iterations(training_len: Sequence, dataset: DatasetBase) -> int:
    """Number of iterations that ('iterations', N) or ('epochs', N) means."""
    if (not isinstance(training_len, (tuple, list)) or len(training_len) != 2
            or training_len[0] not in ("iterations", "epochs")):
        raise ValueError(
            f"training_len must be ('iterations', N) or ('epochs', N), got "
            f"{training_len!r}.")
    unit, amount = training_len
    if int(amount) != amount or int(amount) < 1:
        raise ValueError(f"training_len {training_len!r}: N must be a positive integer.")
    if unit == "iterations":
        return int(amount)
    return int(amount) * dataset.iterations_per_epoch


def _boundaries(total: int, intervals: Sequence[Optional[int]], start: int = 0,
                snapshots: Sequence[int] = ()) -> list:
    """Iterations after `start` at which the compiled loop hands control back to
    Python: multiples of each interval, each snapshot iteration and `total`."""
    points = {total} | {int(k) for k in snapshots}
    given = [int(i) for i in intervals if i]
    for interval in given or [_DEFAULT_CHUNK]:
        if interval < 1:
            raise ValueError(f"evaluation intervals must be positive, got {interval}.")
        points.update(range(interval, total, interval))
    return sorted(point for point in points if point > start)


def _op_determinism():
    """Whether tf.config.experimental.enable_op_determinism() is in force, if knowable."""
    try:  # TensorFlow has no public reader for this setting.
        from tensorflow.python.framework import config as framework_config
        return bool(framework_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return "unknown"


def _due(iteration: int, interval: Optional[int], total: int) -> bool:
    return bool(interval) and (iteration % interval == 0 or iteration == total)


class _Recorder:
    """Keeps metrics in memory, in TensorBoard and in metrics.json."""

    def __init__(self, output_dir: str, save_summaries: bool):
        self.output_dir = output_dir
        self.metrics: Dict[str, Dict[str, list]] = {}
        self.writer = (tf.summary.create_file_writer(paths.summaries(output_dir))
                       if save_summaries else None)

    def add(self, split: str, iteration: int, loss: float, accuracy: float) -> None:
        record = self.metrics.setdefault(split, {"iteration": [], "loss": [], "accuracy": []})
        record["iteration"].append(int(iteration))
        record["loss"].append(float(loss))
        record["accuracy"].append(float(accuracy))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.scalar(f"{split}/loss", float(loss), step=iteration)
                tf.summary.scalar(f"{split}/accuracy", float(accuracy), step=iteration)

    def latest(self) -> Dict[str, Dict[str, float]]:
        return {split: {"iteration": r["iteration"][-1], "loss": r["loss"][-1],
                        "accuracy": r["accuracy"][-1]}
                for split, r in self.metrics.items() if r["iteration"]}

    def save(self) -> None:
        save_restore.write_json(paths.metrics(self.output_dir), self.metrics)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def check_iterations(total: int, start_iteration: int = 0,
                     snapshot_iterations: Sequence[int] = ()) -> None:
    """Raises ValueError unless 0 <= start_iteration < total and every snapshot
    iteration lies in (start_iteration, total]."""
    if int(start_iteration) != start_iteration or not 0 <= start_iteration < total:
        raise ValueError(
            f"start_iteration is {start_iteration!r}, but training runs to iteration "
            f"{total}: it must be a whole number from 0 to {total - 1} (a rewound run "
            "starts at the rewind iteration, which must come before the end).")
    for iteration in snapshot_iterations:
        if int(iteration) != iteration or not start_iteration < iteration <= total:
            raise ValueError(
                f"snapshot iteration {iteration!r} is not between start_iteration "
                f"{start_iteration} (exclusive) and the last iteration {total}: weights "
                "can only be saved at an iteration this run trains to.")


def _clear_snapshots(output_dir: str) -> None:
    """Removes the rewind{K}/ snapshots an interrupted run of this project left
    (a run only clears what it knows it wrote: only in a marked directory)."""
    if not os.path.exists(os.path.join(output_dir, runs.MARKER_FILENAME)):
        return
    for name in os.listdir(output_dir):
        if paths.is_rewind(name) and os.path.isdir(os.path.join(output_dir, name)):
            shutil.rmtree(os.path.join(output_dir, name))


def _check_loss_fits(model: ModelBase, dataset: DatasetBase) -> None:
    """Raises ValueError, before anything is written, if the model's loss or accuracy
    cannot take its outputs with the data's labels (a sigmoid model with two outputs
    for [N] labels, say)."""
    y = tf.constant(dataset.train[1][:2])
    outputs = model(dataset.train[0][:2])
    try:
        model.loss(outputs, y)
        model.accuracy(outputs, y)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        raise ValueError(
            f"the model's outputs (shape {tuple(outputs.shape)}) and the labels (shape "
            f"{tuple(y.shape)}, {y.dtype.name}) do not fit its loss or accuracy: "
            f"{str(error).strip().splitlines()[-1]}. Match the last layer to the labels, "
            "or set the model's loss and accuracy for them.") from error


def prepare_run(dataset: DatasetBase, model: ModelBase, training_len: Sequence,
                output_dir: str, *, validate_interval: Optional[int] = None,
                test_interval: Optional[int] = None,
                save_network: bool = True, start_iteration: int = 0,
                snapshot_iterations: Sequence[int] = (),
                check_loss: bool = True) -> Tuple[int, Network]:
    """Checks a run's arguments and readies its directory and model.

    Clears an incomplete run in `output_dir` (a complete one raises
    FileExistsError), builds `model` and, if `save_network`, saves its
    initial weights and masks. With `check_loss` (the default) it first runs
    the model on two examples to check that its outputs fit its loss and the
    labels; a caller that checked an identical model already may skip it.

    Returns:
      (total_iterations, initial_weights).
    """
    total = training_iterations(training_len, dataset)
    check_iterations(total, start_iteration, snapshot_iterations)
    if validate_interval and dataset.validate is None:
        raise ValueError(
            "validate_interval is set but the dataset has no validation split; "
            "give the dataset one (e.g. validation_size=5000) or drop the interval.")
    if test_interval and dataset.test is None:
        raise ValueError(
            f"test_interval is {test_interval} but the dataset has no test split; pass "
            "test_interval=None (or --test_interval=0), or give the dataset a test split.")
    model.build(dataset.example_shape)
    if check_loss:
        _check_loss_fits(model, dataset)
    os.makedirs(output_dir, exist_ok=True)
    runs.clear_incomplete(output_dir)
    _clear_snapshots(output_dir)
    runs.mark_started(output_dir)

    # Dropout patterns follow the iteration, so a rewound run drops as level 0 did.
    model.set_training_step(start_iteration)
    initial_weights = model.get_current_weights()
    if save_network:
        save_restore.save_network(paths.initial(output_dir), initial_weights)
        save_restore.save_network(paths.masks(output_dir), model.masks)
    return total, initial_weights


# One copy of each data set's arrays on the device, shared by every run that trains
# on it: each level of a trial used to copy the training set again, and the copies
# stayed alive with the compiled functions that captured them (about 200 MB a level).
_DEVICE_DATA: "weakref.WeakKeyDictionary[DatasetBase, tuple]" = weakref.WeakKeyDictionary()


def _device_data(dataset: DatasetBase) -> tuple:
    """(x_train, y_train, {split: (x, y)}) as tensors, made once per data set."""
    if dataset not in _DEVICE_DATA:
        splits = {name: (tf.constant(x), tf.constant(y))
                  for name, (x, y) in dataset.splits.items() if name != "train"}
        _DEVICE_DATA[dataset] = (tf.constant(dataset.train[0]),
                                 tf.constant(dataset.train[1]), splits)
    return _DEVICE_DATA[dataset]


XLA_CHOICES = ("auto", "on", "off")
# Below this fraction of surviving weights a dense layer trains as a sparse vector
# (gather, multiply, segment-sum) when the training loop is compiled with XLA:
# bench/bench_trial.py and ../shared/design/sparse-speed.md put the crossover
# with the dense masked kernel at about 5-6% on a 2-core CPU.
SPARSE_BELOW = 0.05


# What 'auto' means where this variable is set to 'on' or 'off': for many short
# runs (a test suite, quick notebook trials) XLA's compile time outweighs its gain.
XLA_AUTO_VARIABLE = "LOTTERY_TICKET_XLA_AUTO"


def gpu_present() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_logical_devices("GPU"))


def resolve_xla(xla: Any, model: Optional[ModelBase] = None) -> Tuple[bool, bool]:
    """(training loop compiled with XLA, evaluation compiled with XLA) for a setting.

    'auto' compiles the training loop with XLA on a GPU, and on a CPU for a
    network without convolutions (1.1-1.4x faster per step for LeNet; XLA's CPU
    convolutions are many times slower than TensorFlow's), and evaluation only
    on a GPU (on a CPU the large-batch forward pass is faster in TensorFlow's
    own kernels); 'on' compiles both, 'off' neither. True and False mean 'on'
    and 'off'. `model` (built) decides 'auto' on a CPU; without it, 'auto'
    counts as a network without convolutions. The environment variable
    LOTTERY_TICKET_XLA_AUTO=on|off makes 'auto' mean that instead.
    """
    if xla is True or xla is False:
        xla = "on" if xla else "off"
    if xla not in XLA_CHOICES:
        raise ValueError(f"xla is {xla!r}; it must be one of {', '.join(XLA_CHOICES)} "
                         "(auto: XLA for the training loop, and for evaluation on a GPU).")
    if xla == "auto" and os.environ.get(XLA_AUTO_VARIABLE, "auto") != "auto":
        forced = os.environ[XLA_AUTO_VARIABLE]
        if forced not in ("on", "off"):
            raise ValueError(f"{XLA_AUTO_VARIABLE} is {forced!r}; it must be auto, on or "
                             "off (what --xla=auto means in this environment).")
        return forced == "on", forced == "on"
    if xla == "auto":
        gpu = gpu_present()
        convolutional = model is not None and any(
            len(kernel.shape) > 2 for kernel in model._kernels.values())
        return gpu or not convolutional, gpu
    return xla == "on", xla == "on"


def _bucket(count: int) -> int:
    """`count` rounded up to one of a few sizes per power of two (at most 1/8 more),
    so that levels of similar sparsity share one compiled program."""
    if count <= 16:
        return max(count, 1)
    step = 2 ** (int(math.log2(count)) - 3)
    return int(math.ceil(count / step) * step)


def sparse_layout(model: ModelBase, below: float) -> Tuple[Tuple[str, int], ...]:
    """((layer, survivor count), ...) of the dense layers trained sparsely: those
    whose kernel has a mask keeping fewer than `below` of its weights."""
    layout = []
    for name in model.layer_names:
        mask = model._mask_variables.get(name)
        if mask is None or mask.shape.rank != 2 or below <= 0:
            continue  # unmasked, or a convolution
        kept = int(np.count_nonzero(mask.numpy()))
        if kept < below * int(np.prod(mask.shape)):
            layout.append((name, kept))
    return tuple(layout)


# A compiled sparse layer of this many times a run's survivors still serves it:
# the levels of a trial (20% fewer survivors each) then compile about every third
# level instead of every level, for at most twice the sparse work.
_SPARSE_SLACK = 2.0


def _sparse_fits(sizes: Mapping[str, int], layout: Sequence[Tuple[str, int]]) -> bool:
    return (set(sizes) == {name for name, _ in layout}
            and all(kept <= sizes[name] <= max(_SPARSE_SLACK * kept, 16)
                    for name, kept in layout))


class _SparseLayer:
    """A dense layer's surviving weights as a vector, with their rows and columns.

    Padding entries (up to the bucket size) point at (0, 0) and are multiplied
    by 0, so they change neither the outputs nor any gradient.
    """

    def __init__(self, name: str, kernel: tf.Variable, mask: tf.Variable, size: int):
        self.name, self.kernel, self.mask, self.size = name, kernel, mask, size
        self.units = int(kernel.shape[1])
        self.values = tf.Variable(tf.zeros([size]), name=f"{name}_sparse_values")
        self.rows = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        self.columns = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        self.valid = tf.Variable(tf.zeros([size]), trainable=False)

    def load(self) -> None:
        """Takes the survivors' values from the kernel (at the start of a run)."""
        rows, columns = np.nonzero(self.mask.numpy())
        if len(rows) > self.size:
            raise RuntimeError(f"layer {self.name} has {len(rows)} survivors for a sparse "
                               f"layout of {self.size}; this is a bug in sparse_layout.")
        pad = self.size - len(rows)
        valid = np.concatenate([np.ones(len(rows), np.float32), np.zeros(pad, np.float32)])
        rows = np.concatenate([rows, np.zeros(pad, rows.dtype)]).astype(np.int32)
        columns = np.concatenate([columns, np.zeros(pad, columns.dtype)]).astype(np.int32)
        self.rows.assign(rows)
        self.columns.assign(columns)
        self.valid.assign(valid)
        self.values.assign(self.kernel.numpy()[rows, columns] * valid)

    def matmul(self, inputs: tf.Tensor) -> tf.Tensor:
        """inputs @ kernel, computed from the survivors only."""
        weights = self.values * self.valid
        gathered = tf.gather(tf.transpose(inputs), self.rows) * weights[:, None]
        return tf.transpose(tf.math.unsorted_segment_sum(gathered, self.columns, self.units))

    def store(self) -> None:
        """Writes the survivors' values back into the (masked) kernel."""
        indices = tf.stack([self.rows, self.columns], axis=1)
        self.kernel.assign(tf.scatter_nd(indices, self.values * self.valid,
                                         self.kernel.shape))


class CompiledSteps:
    """The compiled training and evaluation functions of one model on one dataset.

    The functions capture the model's and optimizer's variables, not their
    values, so assigning new values to those variables lets the same compiled
    functions serve another run without tracing again.

    Args:
      dataset: its splits are copied to the device once, here.
      model: the network (built here if it has not been called yet).
      optimizer: a Keras optimizer; built here for the trained variables.
      xla: 'auto', 'on' or 'off' (see resolve_xla).
      sparse_below: with an XLA-compiled training loop, a dense layer whose
        mask keeps fewer than this fraction of its weights trains as a
        sparse vector of its survivors (0: never). Call begin() before
        training a run, and sync() before reading the model's kernels.
    """

    def __init__(self, dataset: DatasetBase, model: ModelBase, optimizer: Any,
                 xla: Any = "auto", sparse_below: float = SPARSE_BELOW,
                 sparse_sizes: Optional[Mapping[str, int]] = None):
        model.build(dataset.example_shape)
        self.model = model
        # Whether a run is training with these functions now (see compiled_steps).
        self.in_use = False
        self.optimizer = optimizer
        self.xla_training, self.xla_evaluation = resolve_xla(xla, model)
        self.xla_setting = xla if isinstance(xla, str) else ("on" if xla else "off")
        self._x_train, self._y_train, self._splits = _device_data(dataset)
        self._batch_size = dataset.train_batch_size
        layout = sparse_layout(model, sparse_below) if self.xla_training else ()
        sizes = dict(sparse_sizes or {})
        self._sparse = [_SparseLayer(name, model._kernels[name], model._mask_variables[name],
                                     sizes.get(name) or _bucket(kept))
                        for name, kept in layout]
        sparse_kernels = {id(layer.kernel) for layer in self._sparse}
        self._variables = ([v for v in model.trainable_variables
                            if id(v) not in sparse_kernels]
                           + [layer.values for layer in self._sparse])
        self._dirty = False  # whether sparse values are newer than their kernels
        self.begin()
        optimizer.build(self._variables)
        # A fixed signature traces each function once, whatever the number of
        # batches. Each function wraps a partial of its own, so TensorFlow counts
        # its traces per instance: one trace each is not the "retracing" it warns of.
        self._train_steps = self._make_train_steps(self.xla_training)
        # One function per split, each taking the whole split in one call.
        self._evaluations = {
            split: tf.function(functools.partial(self._evaluation_graph, split),
                               jit_compile=self.xla_evaluation)
            for split in self._splits}
        self._all_finite = tf.function(functools.partial(self._all_finite_graph))

    @property
    def trainables(self) -> list:
        """The variables the optimizer updates (sparse layers as survivor vectors)."""
        return list(self._variables)

    @property
    def sparse_layers(self) -> Tuple[str, ...]:
        """The layers trained as sparse vectors of their survivors."""
        return tuple(layer.name for layer in self._sparse)

    @property
    def sparse_sizes(self) -> Dict[str, int]:
        """Each sparse layer's compiled size (its survivors, padded)."""
        return {layer.name: layer.size for layer in self._sparse}

    def _make_train_steps(self, jit: bool):
        return tf.function(functools.partial(self._train_steps_graph),
                           input_signature=[tf.TensorSpec([None, self._batch_size], tf.int32)],
                           jit_compile=jit)

    def begin(self) -> None:
        """Readies the functions for a run whose values were just loaded into the
        model: sparse layers take their survivors from the kernels."""
        for layer in self._sparse:
            layer.load()
        self._dirty = False
        self._timing: Dict[str, Dict[str, Any]] = {}

    def sync(self) -> None:
        """Writes the sparse layers' values into the model's kernels."""
        if self._dirty:
            for layer in self._sparse:
                layer.store()
            self._dirty = False

    def _all_finite_graph(self) -> tf.Tensor:
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in self._variables])

    def weights_finite(self) -> bool:
        """Whether every trained variable holds only finite values."""
        return bool(self._all_finite())

    def tracing_counts(self) -> Dict[str, int]:
        """How often each compiled function has been traced (1 once used)."""
        counts = {"train_steps": self._train_steps.experimental_get_tracing_count()}
        counts.update({f"evaluate_{split}": function.experimental_get_tracing_count()
                       for split, function in self._evaluations.items()})
        return counts

    def _train_steps_graph(self, indices: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        loss_total = tf.constant(0.0)
        accuracy_total = tf.constant(0.0)
        matmuls = {layer.name: layer.matmul for layer in self._sparse}
        for step in tf.range(tf.shape(indices)[0]):
            x = tf.gather(self._x_train, indices[step])
            y = tf.gather(self._y_train, indices[step])
            with tf.GradientTape() as tape:
                if matmuls:
                    with self.model.overriding(matmuls=matmuls):
                        logits = self.model(x, training=True)
                else:
                    logits = self.model(x, training=True)
                loss = self.model.loss(logits, y)
            gradients = tape.gradient(loss, self._variables)
            self.optimizer.apply_gradients(zip(gradients, self._variables))
            loss_total += loss
            accuracy_total += self.model.accuracy(logits, y)
        count = tf.cast(tf.shape(indices)[0], tf.float32)
        return loss_total / count, accuracy_total / count

    def _evaluation_graph(self, split: str) -> Tuple[tf.Tensor, tf.Tensor]:
        # The split is captured with its static size, so the chunks are static
        # slices: one call evaluates all of it, also under XLA.
        x, y = self._splits[split]
        size = int(y.shape[0])
        chunk = min(size, max(1, int(self.model.evaluation_chunk)))
        full = size // chunk

        # Sparse layers are evaluated densely from their kernels (sync() before):
        # on 10,000 examples the dense product runs near the CPU's peak, while
        # gathering activations per survivor would not (sparse-speed.md), and
        # TensorFlow's sparse-operand matmul measured no faster here.
        def sums(x_chunk, y_chunk):
            logits = self.model(x_chunk, training=False)
            count = tf.cast(tf.shape(y_chunk)[0], tf.float32)
            return (self.model.loss(logits, y_chunk) * count,
                    self.model.accuracy(logits, y_chunk) * count)

        if chunk == size:
            loss_sum, correct = sums(x, y)
            return loss_sum / size, correct / size

        def rows(tensor, begin, count):
            rank = tensor.shape.rank
            return tf.slice(tensor, [begin] + [0] * (rank - 1), [count] + [-1] * (rank - 1))

        loss_sum, correct = tf.constant(0.0), tf.constant(0.0)
        for index in tf.range(full):
            loss, accurate = sums(rows(x, index * chunk, chunk), rows(y, index * chunk, chunk))
            loss_sum += loss
            correct += accurate
        if size % chunk:
            loss, accurate = sums(x[full * chunk:], y[full * chunk:])
            loss_sum += loss
            correct += accurate
        return loss_sum / size, correct / size

    def train_steps(self, indices: np.ndarray) -> Tuple[float, float]:
        """Takes one optimizer step per row of `indices`.

        Args:
          indices: int32 array [steps, train_batch_size] of training-set
            indices, one batch per row (see DatasetBase.batch_indices).

        Returns:
          (mean loss, mean accuracy) over those batches, as computed before
          each step's update.
        """
        traces = self._train_steps.experimental_get_tracing_count()
        started = time.perf_counter()
        try:
            loss, accuracy = self._train_steps(indices)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            if not (self.xla_training and self.xla_setting == "auto" and not self._sparse
                    and "XLA" in str(error)):
                raise
            # A model with an operation XLA cannot compile: 'auto' means "where it
            # works", so the loop is traced again without it (done.json says so).
            logger.warning("the training loop cannot be compiled with XLA (%s); training "
                           "without it.", str(error).strip().splitlines()[0][:200])
            self.xla_training = False
            self._train_steps = self._make_train_steps(False)
            loss, accuracy = self._train_steps(indices)
        loss, accuracy = float(loss), float(accuracy)  # waits for the device
        self._time_call("train_steps", traces, time.perf_counter() - started, len(indices))
        self._dirty = bool(self._sparse)
        return loss, accuracy

    def _time_call(self, name: str, traces_before: int, seconds: float, units: int) -> None:
        function = (self._train_steps if name == "train_steps"
                    else self._evaluations[name.split(":", 1)[1]])
        timing = self._timing.setdefault(name, {"traced": [], "seconds": 0.0, "units": 0})
        if function.experimental_get_tracing_count() != traces_before:
            timing["traced"].append((seconds, units))
        else:
            timing["seconds"] += seconds
            timing["units"] += units

    def compile_seconds(self) -> float:
        """Time this run spent tracing and compiling since begin(): each call that
        traced, less what the same work took in the calls that did not."""
        total = 0.0
        for timing in self._timing.values():
            rate = timing["seconds"] / timing["units"] if timing["units"] else 0.0
            total += sum(max(0.0, seconds - units * rate) for seconds, units in timing["traced"])
        return total

    def evaluate(self, split: str) -> Tuple[float, float]:
        """(loss, accuracy) of the model over a whole non-training split."""
        self.sync()
        traces = self._evaluations[split].experimental_get_tracing_count()
        started = time.perf_counter()
        loss, accuracy = self._evaluations[split]()
        loss, accuracy = float(loss), float(accuracy)
        self._time_call(f"evaluate:{split}", traces, time.perf_counter() - started, 1)
        return loss, accuracy

    def xla_record(self) -> Dict[str, Any]:
        """What done.json records of the compilation: the setting and what it meant."""
        return {"setting": self.xla_setting, "training": self.xla_training,
                "evaluation": self.xla_evaluation,
                "sparse_layers": list(self.sparse_layers)}

    def speed_record(self) -> Dict[str, Any]:
        """What done.json records of how fast this run went, besides its total."""
        return {"compile_seconds": round(self.compile_seconds(), 4)}


# Compiled programs by data set, then by what decides their computation.
_ENGINES: "weakref.WeakKeyDictionary[DatasetBase, collections.OrderedDict]" = (
    weakref.WeakKeyDictionary())
_ENGINES_LOCK = threading.Lock()


def _optimizer_key(optimizer: Any) -> Optional[Hashable]:
    try:
        config = dict(optimizer.get_config())
    except (AttributeError, NotImplementedError, TypeError):
        return None
    config.pop("name", None)  # Names differ between equal optimizers.
    return (type(optimizer).__module__, type(optimizer).__qualname__,
            json.dumps(config, sort_keys=True, default=repr))


# What the traced computation calls on the model, besides its variables.
_TRACED = ("__init__", "forward", "loss", "accuracy", "__call__")


def _defined_in(cls: type, name: str) -> type:
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def _trusted_trace_key(model: ModelBase) -> Optional[Hashable]:
    """model.trace_key(), where it speaks for the model's whole computation.

    A subclass that changes the constructor, forward, loss or accuracy without
    declaring its own trace_key (a ModelFc subclass with an extra argument,
    say) inherits a key that cannot know about its change, and an instance
    with its own loss or forward differs from its class: neither is shared.
    """
    cls = type(model)
    if any(name in vars(model) for name in _TRACED):
        return None
    owner = _defined_in(cls, "trace_key")
    if not all(issubclass(owner, _defined_in(cls, name)) for name in _TRACED):
        return None
    return model.trace_key()


def _engine_key(model: ModelBase, optimizer: Any, xla: Tuple[bool, bool] = (False, False),
                sparse: Tuple = ()) -> Optional[Hashable]:
    """What two runs must share to share compiled functions, or None."""
    model_key = _trusted_trace_key(model)
    optimizer_key = _optimizer_key(optimizer)
    if model_key is None or optimizer_key is None:
        return None
    layout = tuple((v.name, tuple(v.shape), v.dtype.name, v.trainable)
                   for v in model.variables)
    # The functions themselves: one patched on the class after a trace differs.
    functions = tuple(getattr(_defined_in(type(model), name), name) for name in _TRACED)
    return (type(model), model_key, layout, optimizer_key, functions, xla, sparse)


def _assign_all(source: Sequence[tf.Variable], target: Sequence[tf.Variable]) -> None:
    if len(source) != len(target) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(source, target)):
        raise RuntimeError("compiled functions were reused for a different variable "
                           "layout; this is a bug in trainer._engine_key.")
    for value, variable in zip(source, target):
        variable.assign(value)


def compiled_steps(dataset: DatasetBase, model: ModelBase, optimizer: Any,
                   xla: Any = "auto", sparse_below: float = SPARSE_BELOW) -> CompiledSteps:
    """Compiled functions for training `model` with `optimizer` on `dataset`.

    Reuses the functions an earlier run in this process traced for the same
    model class and trace key, variable layout, optimizer setting, XLA
    setting, sparse layout (layers trained sparsely and their padded sizes)
    and data set: that run's private copy of the model is loaded with
    `model`'s values and its optimizer is reset to `optimizer`'s fresh state,
    so the numbers are those of a fresh trace. Call `finish_steps` after
    training to copy the trained values back into `model`. Without a trace
    key (the default for a ModelBase subclass) the functions are made for
    `model`. `xla` and `sparse_below` as in CompiledSteps.
    """
    model.build(dataset.example_shape)
    jit = resolve_xla(xla, model)
    layout = sparse_layout(model, sparse_below) if jit[0] else ()
    key = _engine_key(model, optimizer, jit, tuple(name for name, _ in layout))
    if key is None:
        return CompiledSteps(dataset, model, optimizer, xla, sparse_below)
    with _ENGINES_LOCK:  # claimed in one step, so two threads never claim one engine
        engines = _ENGINES.setdefault(dataset, collections.OrderedDict())
        # Engines for this computation whose sparse layers are big enough, and not
        # wastefully so, for this run's survivors; the smallest first.
        fitting = sorted(((sum(steps.sparse_sizes.values()), index, cached_key)
                          for index, (cached_key, steps) in enumerate(engines.items())
                          if cached_key[0] == key
                          and _sparse_fits(steps.sparse_sizes, layout)))
        free = [cached_key for _, _, cached_key in fitting
                if not engines[cached_key].in_use]
        if fitting and not free:
            # Another run (another thread, or one started from a progress callback)
            # is training with these functions: this one gets its own.
            return CompiledSteps(dataset, model, optimizer, xla, sparse_below)
        fresh = not free
        if fresh:
            # A private copy, so that later runs never change a model the caller holds.
            steps = CompiledSteps(dataset, copy.deepcopy(model), optimizer, xla, sparse_below)
            cached_key = (key, tuple(sorted(steps.sparse_sizes.items())))
            engines[cached_key] = steps
            while len(engines) > _ENGINES_PER_DATASET:
                engines.popitem(last=False)
        else:
            cached_key = free[0]
            steps = engines[cached_key]
            engines.move_to_end(cached_key)
        steps.in_use = True
    try:
        if not fresh:
            optimizer.build(steps.trainables)
            _assign_all(optimizer.variables, steps.optimizer.variables)
            _assign_all(model.variables, steps.model.variables)
            steps.begin()
    except BaseException:
        steps.in_use = False
        raise
    return steps


def finish_steps(steps: CompiledSteps, model: ModelBase) -> None:
    """Copies the trained values from shared compiled functions into `model` and
    frees the functions for the next run (also after an error: `model` then holds
    the values training reached, as if it had been trained in place)."""
    try:
        steps.sync()
        if steps.model is not model:
            _assign_all(steps.model.variables, model.variables)
    finally:
        steps.in_use = False


def _check_finite(steps: CompiledSteps, output_dir: str, iteration: int,
                  losses: Mapping[str, float]) -> None:
    """Raises DivergedError if a loss or a weight is not finite."""
    for split, loss in losses.items():
        if not math.isfinite(loss):
            logger.warning("%s: the %s loss is %s at iteration %d.", output_dir, split, loss,
                           iteration)
            raise DivergedError(output_dir, iteration, f"{split} loss {loss}")
    if not steps.weights_finite():
        raise DivergedError(output_dir, iteration, "non-finite weights")


def _training_loop(steps: CompiledSteps, dataset: DatasetBase, total: int,
                   recorder: _Recorder, output_dir: str, *, test_interval: Optional[int],
                   validate_interval: Optional[int], train_interval: Optional[int],
                   reporter: progress_lib.Reporter, start: int = 0,
                   snapshot: Optional[Callable[[int], None]] = None,
                   snapshot_iterations: Sequence[int] = ()) -> None:
    """Trains from iteration `start` to `total`, recording metrics at each
    boundary, calling snapshot(iteration) at each snapshot iteration, and
    stopping with DivergedError at the first non-finite loss or weight."""
    intervals = {"test": test_interval, "validate": validate_interval if dataset.validate
                 is not None else None}
    reporter.start(total, start)
    last_save = time.time()
    for split, interval in intervals.items():
        if interval:
            recorder.add(split, start, *steps.evaluate(split))
    train_loss, train_accuracy, train_steps_done = 0.0, 0.0, 0
    iteration = start
    for boundary in _boundaries(total, [test_interval, intervals["validate"],
                                        train_interval], start, snapshot_iterations):
        count = boundary - iteration
        loss, accuracy = steps.train_steps(dataset.batch_indices(iteration, count))
        iteration = boundary
        # Weighted by steps, so the recorded training metrics are per-step means
        # however the iterations were split into compiled calls.
        train_loss += loss * count
        train_accuracy += accuracy * count
        train_steps_done += count
        evaluated = False
        losses = {"train": loss}
        for split, interval in intervals.items():
            if _due(iteration, interval, total):
                split_loss, split_accuracy = steps.evaluate(split)
                recorder.add(split, iteration, split_loss, split_accuracy)
                losses[split] = split_loss
                evaluated = True
        _check_finite(steps, output_dir, iteration, losses)
        if snapshot is not None and iteration in snapshot_iterations:
            snapshot(iteration)
        record_train = (_due(iteration, train_interval, total) if train_interval
                        else evaluated or iteration == total)
        if record_train:
            recorder.add("train", iteration, train_loss / train_steps_done,
                         train_accuracy / train_steps_done)
            train_loss, train_accuracy, train_steps_done = 0.0, 0.0, 0
        reporter.update(iteration, total, recorder.latest())
        if time.time() - last_save >= progress_lib.LOG_SECONDS:
            # Saved now and then so that an interrupted run keeps its metrics so far.
            recorder.save()
            last_save = time.time()


def _write_record(output_dir: str, *, total: int, training_len: Sequence, seconds: float,
                  model: ModelBase, dataset: DatasetBase,
                  final_metrics: Dict[str, Dict[str, float]],
                  run_info: Optional[Mapping], start_iteration: int = 0,
                  snapshot_iterations: Sequence[int] = (),
                  snapshot_layers: Sequence[str] = (),
                  xla: Optional[Mapping[str, Any]] = None,
                  speed: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Writes done.json, whose presence marks the run in `output_dir` complete;
    returns what it wrote."""
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
        "op_determinism": _op_determinism(),
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
    metrics: Dict[str, Dict[str, list]]
    record: Dict[str, Any]
    output_dir: str
    snapshots: Dict[int, Network]

    def __new__(cls, initial: Network, final: Network, metrics: Dict[str, Dict[str, list]],
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


# What a run writes besides its weights (metrics.json, summaries, done.json), at most.
_RECORD_BYTES = 1_000_000


def run_bytes(model: ModelBase, snapshots: int = 0, save_network: bool = True
              ) -> Optional[int]:
    """About how many bytes a run of `model` writes: initial/, masks/ and final/
    (kernels), each rewind snapshot (kernels and biases) and its records.

    Returns:
      The bytes, or None if the model is not built yet.
    """
    try:
        kernels = sum(int(np.prod(v.shape)) * v.dtype.size
                      for v in model.kernel_variables.values())
        biases = sum(int(np.prod(v.shape)) * v.dtype.size
                     for v in model.bias_variables.values())
    except RuntimeError:  # not built
        return None
    weights = (3 * kernels + snapshots * (kernels + biases)) if save_network else 0
    return weights + _RECORD_BYTES


def reports_disk_need(function: Callable) -> Callable:
    """Makes a full disk during `function` (train, or a population's) a
    DiskFullError that says how many bytes its runs need: the sum of run_bytes
    over its `model` or `models`, with its snapshot_iterations and save_network."""
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs)
        arguments.apply_defaults()
        given = arguments.arguments

        def needed() -> Optional[int]:
            models = given["models"] if "models" in given else [given["model"]]
            sizes = [run_bytes(model, len(given["snapshot_iterations"]), given["save_network"])
                     for model in models]
            return None if None in sizes else sum(sizes)

        with save_restore.disk_need(needed):
            return function(*args, **kwargs)
    return wrapper


@reports_disk_need
def train(dataset: DatasetBase, model: ModelBase, optimizer_fn: Callable[[], Any],
          training_len: Sequence, output_dir: str, *,
          save_summaries: bool = True, save_network: bool = True,
          test_interval: Optional[int] = 100, validate_interval: Optional[int] = None,
          train_interval: Optional[int] = None, run_info: Optional[Mapping] = None,
          progress: progress_lib.Progress = None, progress_label: str = "",
          iterations_after: int = 0, start_iteration: int = 0,
          snapshot_iterations: Sequence[int] = (), xla: Any = "auto",
          sparse_below: float = SPARSE_BELOW) -> TrainResult:
    """Trains `model` on `dataset` and writes the run to `output_dir`.

    Args:
      dataset: the data; its training batches follow its seeded order.
      model: a ModelBase (built here if it has not been called yet).
      optimizer_fn: makes the optimizer, e.g.
        functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1).
      training_len: ('iterations', N) or ('epochs', N).
      output_dir: the run directory. A complete run there is never
        overwritten (FileExistsError); an incomplete one is redone.
      save_summaries: write TensorBoard event files under summaries/.
      save_network: write initial/, final/ and masks/ (one .npy per layer).
      test_interval: evaluate the whole test split every this many iterations
        (and at iterations 0 and N); None or 0 never (required for a dataset
        without a test split: asking for one is a ValueError).
      validate_interval: the same for the validation split, if the dataset
        has one.
      train_interval: record the mean loss and accuracy of the training
        batches since the last record every this many iterations; None
        records at every test/validate evaluation.
      run_info: JSON-serializable facts about the run (hyperparameters,
        level, trial, ...), written into done.json.
      progress: None (the default) shows a live progress line under the cell
        in a Jupyter kernel and elsewhere logs a line to the 'lottery_ticket'
        logger about every 10 seconds; False shows nothing; a function is
        called as progress(iteration, total, latest_metrics) each time the
        loop returns to Python.
      progress_label: text put before the default progress lines.
      iterations_after: iterations still to come after this run (later
        levels of a trial), for the default progress lines' whole-trial ETA.
      start_iteration: the iteration training starts at (a rewound level
        starts at the rewind iteration K): it trains iterations K..N-1, with
        the dataset's batches of those absolute iterations, evaluates first at
        K and records iterations on the same axis as a run from 0.
      snapshot_iterations: iterations after which the effective kernels and
        biases ('{layer}.bias') are kept (TrainResult.snapshots) and, with
        save_network, saved to rewind{K}/ (paths.rewind), ready to pass as
        presets, before training goes on.
      xla: 'auto' (the default: the training loop compiled with XLA, and
        evaluation too on a GPU), 'on' or 'off'; see resolve_xla. The same
        seeds and setting give the same bits; done.json records it.
      sparse_below: with XLA, dense layers whose masks keep fewer than this
        fraction of their weights train as vectors of their survivors
        (gather, multiply, segment-sum), which is faster on a CPU when very
        sparse; the numbers equal the dense computation's to float rounding.
        0 never does.

    Returns:
      A TrainResult: unpacks as (initial_weights, final_weights), dicts layer
      name -> effective kernel; its `metrics` are those of metrics.json and
      its `record` that of done.json. `model` holds the trained values.

    Raises:
      DivergedError: a loss (training, or an evaluated split) or a weight
        became non-finite; the metrics so far and diverged.json are written,
        done.json is not.
    """
    resolve_xla(xla)  # a bad setting is refused before anything is written
    if not 0.0 <= float(sparse_below) <= 1.0:
        raise ValueError(f"sparse_below is {sparse_below}; it is a fraction of weights in "
                         "[0, 1] (0 turns the sparse layers off).")
    reporter = progress_lib.Reporter(progress, progress_label, iterations_after)
    total, initial_weights = prepare_run(dataset, model, training_len, output_dir,
                                         validate_interval=validate_interval,
                                         test_interval=test_interval,
                                         save_network=save_network,
                                         start_iteration=start_iteration,
                                         snapshot_iterations=snapshot_iterations)
    steps = compiled_steps(dataset, model, optimizer_fn(), xla, sparse_below)
    recorder = _Recorder(output_dir, save_summaries)
    snapshots: Dict[int, Network] = {}

    def snapshot(iteration: int) -> None:
        # steps.model is the network being trained (a shared copy when reused). The
        # biases too: a rewound network is the whole network at that iteration.
        steps.sync()
        snapshots[iteration] = steps.model.get_current_weights(include_biases=True)
        if save_network:
            save_restore.save_network(paths.rewind(output_dir, iteration), snapshots[iteration])

    started = time.time()
    try:
        try:
            _training_loop(steps, dataset, total, recorder, output_dir,
                           test_interval=test_interval, validate_interval=validate_interval,
                           train_interval=train_interval, reporter=reporter,
                           start=start_iteration, snapshot=snapshot,
                           snapshot_iterations=tuple(snapshot_iterations))
        except DivergedError as error:
            recorder.save()
            runs.write_diverged(output_dir, {"iteration": error.iteration,
                                             "reason": error.what,
                                             "run_info": dict(run_info or {})})
            raise
        except BaseException:
            recorder.save()  # An interrupted run keeps its metrics so far.
            raise
        finally:
            finish_steps(steps, model)
        final_weights = model.get_current_weights()
        if runs.is_complete(output_dir):
            raise FileExistsError(
                f"{output_dir} was completed by another process while this one trained; "
                "its results are kept and this run's are discarded.")
        if save_network:
            save_restore.save_network(paths.final(output_dir), final_weights)
        recorder.save()
    finally:
        recorder.close()

    record = _write_record(output_dir, total=total, training_len=training_len,
                           seconds=time.time() - started, model=model, dataset=dataset,
                           final_metrics=recorder.latest(), run_info=run_info,
                           start_iteration=start_iteration,
                           snapshot_iterations=snapshot_iterations,
                           snapshot_layers=next(iter(snapshots.values()), {}).keys(),
                           xla=steps.xla_record(), speed=steps.speed_record())
    return TrainResult(initial_weights, final_weights, copy.deepcopy(recorder.metrics),
                       record, output_dir, snapshots)
