"""The engine of one network (K = 1): `CompiledSteps` and its cache.

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

import concurrent.futures
import copy
import functools
import logging
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training.engine import Engine
from lottery_ticket.foundations.training.overlap import evaluation_thread
from lottery_ticket.foundations.training.record import CompileTimer
from lottery_ticket.foundations.training.sparse import (SPARSE_BELOW,
                                                        SPARSE_EVALUATION_CHUNK, SparseLayer,
                                                        bucket, sparse_evaluates,
                                                        sparse_fits, sparse_layout)
from lottery_ticket.foundations.training.xla import resolve_xla

logger = logging.getLogger("lottery_ticket")

# Compiled programs kept per data set (the least recently used is dropped first).
ENGINES_PER_DATASET = 4
ENGINES = cache_lib.EngineCache(ENGINES_PER_DATASET)


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
      sparse_sizes: layer -> compiled size of its sparse vector (default:
        its survivors, rounded up to a bucket).
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
        self._x_train, self._y_train, self._splits = cache_lib.device_data(dataset)
        self._batch_size = dataset.train_batch_size
        layout = sparse_layout(model, sparse_below) if self.xla_training else ()
        sizes = dict(sparse_sizes or {})
        kernels, masks = model.kernel_variables, model.mask_variables
        self._sparse = [SparseLayer(name, kernels[name], masks[name],
                                    sizes.get(name) or bucket(kept))
                        for name, kept in layout]
        sparse_kernels = {id(layer.kernel) for layer in self._sparse}
        self._variables = ([v for v in model.trainable_variables
                            if id(v) not in sparse_kernels]
                           + [layer.values for layer in self._sparse])
        self._dirty = False  # whether sparse values are newer than their kernels
        self.timer = CompileTimer()
        self.waited_seconds = 0.0  # waiting for overlapped evaluations
        self.begin()
        optimizer.build(self._variables)
        # A fixed signature traces each function once, whatever the number of
        # batches. Each function wraps a partial of its own, so TensorFlow counts
        # its traces per instance: one trace each is not the "retracing" it warns of.
        self._train_steps = self._make_train_steps(self.xla_training)
        # One function per split, each taking the whole split in one call. With
        # sparse layers sparse enough (SPARSE_EVALUATION_BELOW) it evaluates through
        # their survivors, compiled with XLA (the training loop compiles with XLA,
        # so the model does).
        self.sparse_evaluation = sparse_evaluates(layout, kernel_sizes(model))
        self._transposed = {
            split: transposed_chunks(dataset, split, SPARSE_EVALUATION_CHUNK)
            for split in self._splits} if self.sparse_evaluation else {}
        self._evaluation = Evaluation(model, self._sparse, self._splits, self._transposed,
                                      self.xla_evaluation, self.sparse_evaluation)
        self._evaluations = self._evaluation.functions
        # The overlapped evaluation's copy of the network, made when first needed.
        self._copy: Optional[Evaluation] = None
        self._copy_in: Optional[Callable[[], Any]] = None
        self._copy_out: Optional[Callable[[], Any]] = None
        self._future: Optional[concurrent.futures.Future] = None
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
        self.timer.reset()
        self.waited_seconds = 0.0

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
        if self._copy is not None:
            counts.update({f"evaluate_{split}_copy": function.experimental_get_tracing_count()
                           for split, function in self._copy.functions.items()})
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
        # Before the call: if it is interrupted, the survivors it trained still
        # reach the kernels (finish_steps syncs).
        self._dirty = bool(self._sparse)
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
        return loss, accuracy

    def _time_call(self, name: str, traces_before: int, seconds: float, units: int) -> None:
        function = (self._train_steps if name == "train_steps"
                    else self._evaluations[name.split(":", 1)[1]])
        self.timer.add(name, function.experimental_get_tracing_count() != traces_before,
                       seconds, units)

    def compile_seconds(self) -> float:
        """Time this run spent tracing and compiling since begin(): each call that
        traced, less what the same work took in the calls that did not."""
        return self.timer.compile_seconds()

    def evaluate(self, split: str) -> Tuple[float, float]:
        """(loss, accuracy) of the model over a whole non-training split."""
        if not self.sparse_evaluation:
            self.sync()
        traces = self._evaluations[split].experimental_get_tracing_count()
        started = time.perf_counter()
        loss, accuracy = self._evaluations[split]()
        loss, accuracy = float(loss), float(accuracy)
        self._time_call(f"evaluate:{split}", traces, time.perf_counter() - started, 1)
        return loss, accuracy

    def start_copy_evaluation(self, splits: Sequence[str]
                              ) -> Callable[[], Dict[str, Tuple[float, float]]]:
        """Copies the network (as it is now) into a second set of variables and
        starts evaluating that copy on `splits` on the evaluation thread, while
        the caller goes on training.

        The copy is evaluated by the same graph code as evaluate(), so it gives
        the same bits. Call the returned function, on this thread, before the
        next start_copy_evaluation or restore_copy: it waits for the evaluation
        and returns split -> (loss, accuracy) (raising what the evaluation
        raised).
        """
        if self._copy is None:
            self._make_copy()
        if self._future is not None:
            # One left running by a run that ended with an error: the copy is its.
            concurrent.futures.wait([self._future])
        if not self.sparse_evaluation:
            self.sync()  # the evaluation reads the kernels
        self._copy_in()
        copy_functions = self._copy.functions

        def evaluate_all() -> List[Tuple[str, float, float, bool, float]]:
            results = []
            for split in splits:
                function = copy_functions[split]
                traces = function.experimental_get_tracing_count()
                started = time.perf_counter()
                loss, accuracy = function()
                loss, accuracy = float(loss), float(accuracy)
                results.append((split, loss, accuracy,
                                function.experimental_get_tracing_count() != traces,
                                time.perf_counter() - started))
            return results

        future = self._future = evaluation_thread().submit(evaluate_all)

        def result() -> Dict[str, Tuple[float, float]]:
            started = time.perf_counter()
            try:
                results = future.result()
            finally:
                self.waited_seconds += time.perf_counter() - started
            answers = {}
            for split, loss, accuracy, traced, seconds in results:
                # Recorded here, not on the evaluation thread: the timer is not shared.
                self.timer.add(f"evaluate:{split}", traced, seconds, 1)
                answers[split] = (loss, accuracy)
            return answers

        return result

    def restore_copy(self) -> None:
        """Puts the values of the last start_copy_evaluation back into the network
        (a run that turns out to have diverged there ends with them)."""
        if self._future is not None:
            concurrent.futures.wait([self._future])
        self._copy_out()
        self._dirty = bool(self._sparse)

    def copy_evaluation_possible(self) -> bool:
        """Whether the network can be copied for an overlapped evaluation (made
        here if not yet); a model that cannot be deep-copied cannot."""
        if self._copy is None:
            try:
                self._make_copy()
            except Exception as error:  # noqa: BLE001 - any failure means "evaluate in place"
                logger.warning("evaluating in place, not overlapped: the network cannot be "
                               "copied (%s)", str(error).strip().splitlines()[0][:200]
                               if str(error).strip() else type(error).__name__)
                return False
        return True

    def _make_copy(self) -> None:
        model = copy.deepcopy(self.model)
        kernels, masks = model.kernel_variables, model.mask_variables
        sparse = [SparseLayer(layer.name, kernels[layer.name], masks[layer.name], layer.size)
                  for layer in self._sparse]
        self._copy = Evaluation(model, sparse, self._splits, self._transposed,
                                self.xla_evaluation, self.sparse_evaluation)
        pairs = list(zip(self._evaluation.variables, self._copy.variables))
        if any(a.shape != b.shape or a.dtype != b.dtype for a, b in pairs):
            raise RuntimeError("the evaluation copy's variables do not match the network's; "
                               "this is a bug in the copy.")

        def copy_in() -> None:
            for source, target in pairs:
                target.assign(source)

        def copy_out() -> None:
            for source, target in pairs:
                source.assign(target)

        # One call each, not one eager call per variable.
        self._copy_in, self._copy_out = tf.function(copy_in), tf.function(copy_out)

    def xla_record(self) -> Dict[str, Any]:
        """What done.json records of the compilation: the setting and what it meant."""
        return {"setting": self.xla_setting, "training": self.xla_training,
                "evaluation": self.xla_evaluation or self.sparse_evaluation,
                "sparse_layers": list(self.sparse_layers)}

    def speed_record(self) -> Dict[str, Any]:
        """What done.json records of how fast this run went, besides its total."""
        return self.timer.speed_record()


class Evaluation:
    """The compiled evaluation of one network's variables on each non-training split.

    CompiledSteps evaluates its own network with one; an overlapped
    evaluation (CompiledSteps.start_copy_evaluation) evaluates a copy of it,
    with the same graph code, so that its numbers are the same bits.

    Args:
      model: the network whose variables the functions read.
      sparse: its layers trained as survivor vectors (SparseLayer over its
        own kernels and masks).
      splits: split -> (x, y) on the device.
      transposed: split -> its examples flattened and transposed in chunks
        (used by a sparse evaluation).
      jit: compile with XLA.
      sparse_evaluation: evaluate through the sparse layers' survivors.
    """

    def __init__(self, model: ModelBase, sparse: Sequence[SparseLayer],
                 splits: Mapping[str, Tuple[tf.Tensor, tf.Tensor]],
                 transposed: Mapping[str, "TransposedChunks"], jit: bool,
                 sparse_evaluation: bool):
        self.model = model
        self.sparse = list(sparse)
        self.sparse_evaluation = sparse_evaluation
        self._splits, self._transposed = splits, transposed
        self.functions = {
            split: tf.function(functools.partial(self._graph, split),
                               jit_compile=jit or sparse_evaluation)
            for split in splits}

    @property
    def variables(self) -> list:
        """Every variable an evaluation reads or a rollback restores, in a fixed order."""
        return list(self.model.variables) + [
            variable for layer in self.sparse
            for variable in (layer.values, layer.rows, layer.columns, layer.valid)]

    def _graph(self, split: str) -> Tuple[tf.Tensor, tf.Tensor]:
        x, y = self._splits[split]
        if not self.sparse_evaluation:
            return chunked_evaluation(self.model, x, y)
        # Work in proportion to the survivors: the dense product of 10,000
        # examples runs near the CPU's peak, but at a few percent of the weights
        # the survivors' gather and segment sum, compiled with XLA in chunks
        # small enough to stay in cache, does less work (TensorFlow's
        # sparse-operand matmul measured slower than either here). The values
        # are read from the survivor vectors, so no sync() is needed.
        # The split's examples, flattened and transposed once: a first sparse layer
        # gathers its survivors' rows from them directly (transposing each chunk
        # inside the compiled loop costs as much as the layer's own work).
        transposed = self._transposed[split]

        def logits_of(x_chunk: tf.Tensor, begin: Any, count: int) -> tf.Tensor:
            def matmul_of(layer: SparseLayer) -> Callable[[tf.Tensor], tf.Tensor]:
                def matmul(inputs: tf.Tensor) -> tf.Tensor:
                    if (flattened_from(inputs, x_chunk)
                            and inputs.shape[1] == transposed.features):
                        return layer.transposed_matmul(transposed.chunk(begin, count))
                    return layer.matmul(inputs)
                return matmul

            with self.model.overriding(matmuls={layer.name: matmul_of(layer)
                                                for layer in self.sparse}):
                return self.model(x_chunk, training=False)

        # The chunks the data were laid out in, whatever SPARSE_EVALUATION_CHUNK is now.
        return chunked_evaluation(self.model, x, y, chunk=transposed.chunk_size,
                                  logits_of=logits_of)


class TransposedChunks:
    """A split's examples flattened, in chunks, each chunk transposed
    ([features, examples]): what a sparse evaluation's first layer gathers its
    survivors' rows from (see `transposed_chunks`).

    Args:
      chunks: [chunks, features, chunk] float32, the whole chunks.
      remainder: [features, rest] float32, the examples after them, or None.
    """

    def __init__(self, chunks: tf.Tensor, remainder: Optional[tf.Tensor]):
        self.chunks, self.remainder = chunks, remainder
        self.features = int(chunks.shape[1])
        self.chunk_size = int(chunks.shape[2]) if int(chunks.shape[0]) else int(
            remainder.shape[1])

    def chunk(self, begin: Any, count: int) -> tf.Tensor:
        """The transposed examples from row `begin` on.

        Args:
          begin: the first row: a multiple of the chunk size (an int or a
            scalar tensor) for a whole chunk, or the remainder's first row.
          count: the rows wanted: the chunk size, or the remainder's length.

        Returns:
          [features, count] float32.

        Raises:
          ValueError: no chunk of that length starts there.
        """
        if isinstance(begin, int) and begin % self.chunk_size:
            raise ValueError(f"row {begin} does not start a chunk of {self.chunk_size} "
                             "examples. This is a bug in the caller.")
        if count == self.chunk_size and int(self.chunks.shape[0]):
            return self.chunks[begin // self.chunk_size]
        if self.remainder is None or count != int(self.remainder.shape[1]):
            raise ValueError(f"no transposed chunk of {count} examples at row {begin}; "
                             f"chunks hold {self.chunk_size}. This is a bug in the caller.")
        return self.remainder


def transposed_chunks(dataset: DatasetBase, split: str, chunk: int) -> TransposedChunks:
    """A non-training split laid out for a sparse evaluation: made once per data
    set, split and chunk size in a process (cache.chunked_split), so engines of
    several sparse sizes, and populations, share it.

    Args:
      dataset: the data set.
      split: one of its non-training splits.
      chunk: examples per chunk (fewer when the split is smaller).
    """
    _, chunks, _, _, remainder, _ = cache_lib.chunked_split(dataset, split, chunk)
    return TransposedChunks(chunks, remainder if int(remainder.shape[1]) else None)


def chunked_evaluation(model: ModelBase, x: tf.Tensor, y: tf.Tensor,
                       chunk: Optional[int] = None,
                       logits_of: Optional[Callable[[tf.Tensor, Any, int], tf.Tensor]] = None
                       ) -> Tuple[tf.Tensor, tf.Tensor]:
    """(mean loss, accuracy) of `model` on all of (x, y), in graph code: chunks of
    `chunk` (default model.evaluation_chunk) examples, weighted by their sizes.

    The split is captured with its static size, so the chunks are static
    slices: one call evaluates all of it, also under XLA. `logits_of(x_chunk,
    begin, count)`, if given, computes a chunk's logits instead of
    model(x_chunk) (begin: the chunk's first row, count: its static size).
    """
    size = int(y.shape[0])
    chunk = min(size, max(1, int(model.evaluation_chunk if chunk is None else chunk)))
    full = size // chunk
    custom = logits_of is not None
    if logits_of is None:
        logits_of = lambda x_chunk, begin, count: model(x_chunk, training=False)  # noqa: E731

    def sums(x_chunk, y_chunk, begin, count):
        logits = logits_of(x_chunk, begin, count)
        count = tf.cast(tf.shape(y_chunk)[0], tf.float32)
        return (model.loss(logits, y_chunk) * count,
                model.accuracy(logits, y_chunk) * count)

    if chunk == size:
        # A graph tensor, also for a split captured from eager data: logits_of
        # may recognise the chunk by its graph name.
        loss_sum, correct = sums(tf.identity(x) if custom else x, y, 0, size)
        return loss_sum / size, correct / size

    loss_sum, correct = tf.constant(0.0), tf.constant(0.0)
    for index in tf.range(full):
        begin = index * chunk
        loss, accurate = sums(rows(x, begin, chunk), rows(y, begin, chunk), begin, chunk)
        loss_sum += loss
        correct += accurate
    if size % chunk:
        loss, accurate = sums(x[full * chunk:], y[full * chunk:], full * chunk, size % chunk)
        loss_sum += loss
        correct += accurate
    return loss_sum / size, correct / size


def rows(tensor: tf.Tensor, begin: Any, count: int) -> tf.Tensor:
    """tensor[begin:begin + count] along the first axis, as a static-size slice."""
    rank = tensor.shape.rank
    return tf.slice(tensor, [begin] + [0] * (rank - 1), [count] + [-1] * (rank - 1))


def flattened_from(tensor: tf.Tensor, source: tf.Tensor) -> bool:
    """Whether graph tensor `tensor` is `source` itself or `source` reshaped to
    [rows, features] (each row flattened in order), through identities and
    reshapes: then `source`'s rows, flattened and transposed, are its transpose."""
    rows_count = source.shape[0]
    if tensor.shape.rank != 2 or tensor.shape[0] != rows_count:
        return False
    if not (tf.is_symbolic_tensor(tensor) and tf.is_symbolic_tensor(source)):
        return tensor is source  # an eager tensor has no name or op to trace back
    for _ in range(4):
        if tensor is source or tensor.name == source.name:
            return True
        if tensor.op.type not in ("Reshape", "Identity"):
            return False
        tensor = tensor.op.inputs[0]
        if tensor.shape.rank is None or (tensor.shape.rank > 0
                                         and tensor.shape[0] != rows_count):
            return False
    return False


def kernel_sizes(model: ModelBase) -> Dict[str, int]:
    """Layer -> number of weights in its kernel."""
    return {name: int(np.prod(kernel.shape)) for name, kernel in model.kernel_variables.items()}


def compiled_steps(dataset: DatasetBase, model: ModelBase, optimizer: Any,
                   xla: Any = "auto", sparse_below: float = SPARSE_BELOW,
                   iterations: Optional[int] = None) -> CompiledSteps:
    """Compiled functions for training `model` with `optimizer` on `dataset`.

    Reuses the functions an earlier run in this process traced for the same
    model class and trace key, variable layout, optimizer setting, XLA
    setting, sparse layout (layers trained sparsely and their padded sizes)
    and data set: that run's private copy of the model is loaded with
    `model`'s values and its optimizer is reset to `optimizer`'s fresh state,
    so the numbers are those of a fresh trace. Call `finish_steps` after
    training to copy the trained values back into `model`. Without a trace
    key (the default for a ModelBase subclass) the functions are made for
    `model`. `xla` and `sparse_below` as in CompiledSteps. `iterations`, the
    run's length if known, limits the padding a reused sparse program may
    carry (sparse.sparse_fits): a long run compiles a program of its own size
    rather than train on one made for many more survivors.
    """
    model.build(dataset.example_shape)
    jit = resolve_xla(xla, model)
    layout = sparse_layout(model, sparse_below) if jit[0] else ()
    key = cache_lib.engine_key(model, optimizer, cache_lib.variable_layout(model), jit,
                               tuple(name for name, _ in layout))
    if key is None:
        return CompiledSteps(dataset, model, optimizer, xla, sparse_below)
    evaluates = sparse_evaluates(layout, kernel_sizes(model))
    steps, fresh = ENGINES.claim(
        dataset, key,
        # A private copy, so that later runs never change a model the caller holds.
        make=lambda: CompiledSteps(dataset, copy.deepcopy(model), optimizer, xla,
                                   sparse_below),
        # Sparse layers big enough, and not wastefully so, for this run's
        # survivors; the smallest first.
        fits=lambda steps: (sparse_fits(steps.sparse_sizes, layout, iterations)
                            and steps.sparse_evaluation == evaluates),
        cost=lambda steps: sum(steps.sparse_sizes.values()),
        variant=lambda steps: tuple(sorted(steps.sparse_sizes.items())))
    try:
        if not fresh:
            optimizer.build(steps.trainables)
            cache_lib.assign_all(optimizer.variables, steps.optimizer.variables)
            cache_lib.assign_all(model.variables, steps.model.variables)
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
            cache_lib.assign_all(steps.model.variables, model.variables)
    finally:
        steps.in_use = False


class SingleEngine(Engine):
    """The loop's Engine of one run (K = 1) over its CompiledSteps.

    Args:
      steps: the compiled functions.
      overlap: evaluate a copy of the network on the evaluation thread while
        training goes on (see overlap.resolve_overlap).
    """

    size = 1

    def __init__(self, steps: CompiledSteps, overlap: bool = False):
        self.steps = steps
        self.overlaps = bool(overlap)

    def train_steps(self, indices: np.ndarray, first_step: int) -> Tuple[np.ndarray, np.ndarray]:
        loss, accuracy = self.steps.train_steps(indices[:, 0])
        return np.array([loss]), np.array([accuracy])

    def evaluate(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        loss, accuracy = self.steps.evaluate(split)
        return np.array([loss]), np.array([accuracy])

    def start_evaluation(self, splits: Sequence[str]
                         ) -> Callable[[], Dict[str, Tuple[np.ndarray, np.ndarray]]]:
        if self.overlaps and not self.steps.copy_evaluation_possible():
            self.overlaps = False  # done.json says so
        if not self.overlaps:
            return super().start_evaluation(splits)
        result = self.steps.start_copy_evaluation(splits)

        def answers() -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
            return {split: (np.array([loss]), np.array([accuracy]))
                    for split, (loss, accuracy) in result().items()}

        return answers

    def restore_evaluated(self) -> None:
        if not self.overlaps:
            super().restore_evaluated()
        self.steps.restore_copy()

    def finite(self) -> np.ndarray:
        return np.array([self.steps.weights_finite()])

    def member_weights(self) -> List[Network]:
        # steps.model is the network being trained (a shared copy when reused). The
        # biases too: a rewound network is the whole network at that iteration.
        self.steps.sync()
        return [self.steps.model.get_current_weights(include_biases=True)]

    def finish(self, models: Sequence[ModelBase], iteration: int) -> None:
        finish_steps(self.steps, models[0])

    def xla_record(self) -> Dict[str, Any]:
        return self.steps.xla_record()

    def speed_record(self) -> Dict[str, Any]:
        record = self.steps.speed_record()
        if self.overlaps:
            # Only when it ran (as write_record's other optional keys), so that a run
            # evaluating in place records what it did before, as a population does.
            record["overlap_evaluation"] = True
            # The part of the evaluations that training did not hide.
            record["evaluation_wait_seconds"] = round(self.steps.waited_seconds, 4)
        return record
