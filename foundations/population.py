"""Training a population: K networks of one architecture in one compiled program.

`train_population` is the population form of `trainer.train`. Each member has
its own model (seed, masks, presets), its own data order and its own run
directory, and each run directory ends up exactly as a single `trainer.train`
run would leave it (initial/, masks/, final/, metrics.json, summaries/,
done.json, diverged.json for a member that diverges), with
``"population": {"size": K, "member": k}`` added to its run_info.

How it trains. Every kernel and bias is stacked over the members on a leading
axis [K, ...] (one tf.Variable per layer for the whole population), and so are
the masks. A training step gathers each member's own batch ([K, batch, ...]),
computes every member's forward pass (see "Two paths" below), sums the
members' losses (each the model's own loss, a mean over that member's batch)
and takes one optimizer step over the stacked variables. The members never
mix: the gradient of the sum with respect to member k's slice is the gradient
of member k's loss, the masks are applied in the forward pass (a pruned weight
gets a zero gradient and stays exactly 0), and only elementwise optimizers are
accepted (SGD, momentum, Adam, ...: each element's update depends on that
element alone), so each member follows its single run up to floating-point
rounding (batched matrix products add in another order).

Two paths. Dense models (ModelFc, custom models built from ``dense_layer``,
elementwise activations and per-example reshapes, without dropout) run
*batched*: the model's own ``forward`` runs once on all members' rows stacked
member-major ([K*batch, ...]), with ``ModelBase.overriding(matmuls=...)``
making each dense layer one batched matmul of [K, batch, in] rows with the
stacked [K, in, out] kernels (plus each member's bias); only the cheap loss
and accuracy run per member (tf.vectorized_map). Whether a model qualifies is
decided once per architecture by a trial (`batched_reason`): random members
and examples through the batched forward must use every dense layer and give
each member what its own forward gives. Every other model (convolutions,
dropout, a forward that mixes examples, or one the trial cannot run) runs
its ``forward`` once per member under ``tf.vectorized_map`` (with
``overriding`` supplying that member's effective kernels, biases and dropout
seeds): correct, with the single runs' numbers, but slower; vectorization
falls back to a loop over members for convolutions with per-member filters
and for stateless dropout with per-member seeds.

As in the trainer, the iterations between two evaluations run in one
tf.function (a tf.range loop over rows of batch indices into the training set,
which stays on the device), and the compiled functions are kept per data set
and reused by later populations of the same architecture, size and optimizer
setting (the levels of a lottery population).

XLA. ``jit_compile=None`` (the default) chooses per path; see
bench/bench_population.py, which measures both. The vectorized_map path runs
without XLA: on CPU its program ran about 3x slower under XLA for
LeNet-300-100 and no faster for tiny networks, and compiling the training step
alone with XLA made XLA constant-fold the vectorized program for minutes. The
batched path runs without XLA too (``_BATCHED_JIT``): on a 2-core CPU its
steady step took 3.7 ms without and 20 ms with XLA for 1,000 tiny 2-10-1
networks, and 20 ms without and 178 ms with XLA for 16 LeNet-300-100s (XLA's
CPU code for batched matmuls of many small matrices is slow).

Speed. Both paths end in batched matmuls (vectorized_map turns each member's
matmul into one), and on a 2-core CPU their steady steps took about the same
time (3.5 ms for the 1,000 tiny networks, 20 ms for 16 LeNets); the batched
path is the simpler program, and the one to build on. For many tiny networks most of a population's time is per member and outside the
steps: building each model (its own initializers) and each run directory's
files, every one synced (about 9 per member), as in single runs.
"""

import concurrent.futures
import copy
import functools
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import progress as progress_lib
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (DROPOUT_STEP, BIAS_SUFFIX, ModelBase,
                                                   bias_key, dropout_seed_key)
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

DivergedError = runs.DivergedError

# Keras optimizers whose update of each element reads only that element's gradient
# and state (and the step count): one of them over stacked variables updates every
# member as its own optimizer would. Norm-based ones (LAMB, LARS, Adafactor's
# factored moments) and gradient clipping by norm would mix the members.
_ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
                           "Adadelta", "Ftrl", "Lion")
# Engines kept per data set (least recently used dropped first).
_ENGINES_PER_DATASET = 4
# A whole-split evaluation holds K times a single run's activations; chunks of
# about this many member-examples keep that near a single run's memory.
_EVALUATION_BUDGET = 8
# Threads that prepare and finish the members' run directories: mostly waiting for
# file syncs, which overlap.
_WRITER_THREADS = 8
# jit_compile's default for populations that run batched (see the module docstring).
_BATCHED_JIT = False


class PopulationDivergedError(DivergedError):
    """Some members diverged; the others finished and were written.

    Attributes:
      results: per member, its trainer.TrainResult or its DivergedError.
      diverged: the members' DivergedErrors, in member order.
    """

    def __init__(self, results: List[Union[trainer.TrainResult, DivergedError]]):
        self.results = results
        self.diverged = [r for r in results if isinstance(r, DivergedError)]
        first = self.diverged[0]
        super().__init__(first.output_dir, first.iteration, first.what)
        self.args = (f"{len(self.diverged)} of {len(results)} members of the population "
                     f"diverged (the first: {first})"
                     f"{'' if len(self.diverged) == len(results) else '; the others completed'}"
                     ". The diverged runs are recorded as such (diverged.json).",)


# -- Checks -------------------------------------------------------------------


def _check_optimizer(optimizer: Any) -> None:
    """Raises ValueError unless one `optimizer` over stacked variables updates
    each member as the member's own optimizer would."""
    name = type(optimizer).__name__
    module = type(optimizer).__module__
    if name not in _ELEMENTWISE_OPTIMIZERS or not module.startswith("keras"):
        raise ValueError(
            f"the optimizer is {module}.{name}; a population trains with one optimizer over "
            "the members' stacked weights, which is only the members' own optimizers for "
            f"elementwise Keras optimizers ({', '.join(_ELEMENTWISE_OPTIMIZERS)}).")
    config = optimizer.get_config()
    for key in ("clipnorm", "global_clipnorm"):
        if config.get(key):
            raise ValueError(
                f"the optimizer has {key}={config[key]}: clipping by a norm over a stacked "
                "variable would mix the members' gradients. Train such runs one at a time "
                "(trainer.train), or clip by value (clipvalue), which is elementwise.")


def _sample_rows(count: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, num=min(count, 97)).astype(np.int64))


def _check_datasets(datasets: Sequence[DatasetBase]) -> None:
    """Raises ValueError unless every data set holds the first one's arrays (the
    same objects, or arrays of the same shape and type agreeing on sampled rows)
    and batch size: the members may differ only in their batch order."""
    first = datasets[0]
    for k, dataset in enumerate(datasets):
        if dataset is first:
            continue
        if not isinstance(dataset, DatasetBase):
            raise TypeError(f"datasets[{k}] is a {type(dataset).__name__}, not a DatasetBase.")
        if dataset.train_batch_size != first.train_batch_size:
            raise ValueError(
                f"datasets[{k}] has train_batch_size {dataset.train_batch_size} but "
                f"datasets[0] has {first.train_batch_size}: the members of a population "
                "train on batches of one size (their data may differ only in "
                "train_order_seed).")
        if set(dataset.splits) != set(first.splits):
            raise ValueError(f"datasets[{k}] has the splits {sorted(dataset.splits)} but "
                             f"datasets[0] has {sorted(first.splits)}.")
        for split, arrays in first.splits.items():
            for part, a, b in zip(("examples", "labels"), arrays, dataset.splits[split]):
                if a is b:
                    continue
                rows = _sample_rows(len(a)) if len(a) == len(b) else None
                if (a.shape != b.shape or a.dtype != b.dtype
                        or not np.array_equal(a[rows], b[rows])):
                    raise ValueError(
                        f"datasets[{k}]'s {split} {part} ({b.shape}, {b.dtype}) are not "
                        f"datasets[0]'s ({a.shape}, {a.dtype}): the members of a population "
                        "train on the same data (the data sets may differ only in "
                        "train_order_seed).")


def _layout(model: ModelBase) -> List[Tuple[str, Tuple[int, ...]]]:
    shapes = [(key, tuple(np.shape(value)))
              for key, value in model.get_current_weights(include_biases=True).items()]
    return shapes + [(dropout_seed_key(name), ()) for name in sorted(model.dropout_seeds)]


def _check_models(models: Sequence[ModelBase], example_shape: Sequence[int]) -> None:
    """Builds the models; raises ValueError unless they share class, trace key and
    variable layout (one traced forward() must describe every member)."""
    for model in models:
        if not isinstance(model, ModelBase):
            raise TypeError(f"a population's models are ModelBase instances; got "
                            f"{type(model).__name__}.")
    template = models[0]
    for k, model in enumerate(models):
        if type(model) is not type(template):
            raise ValueError(f"models[{k}] is a {type(model).__name__} but models[0] is a "
                             f"{type(template).__name__}: a population has one architecture.")
    for model in models:
        model.build(example_shape)
    key = trainer._trusted_trace_key(template)  # pylint: disable=protected-access
    if key is None:
        raise ValueError(
            f"{type(template).__name__} declares no trace_key (or changes forward, loss, "
            "accuracy or the constructor without declaring its own): a population traces "
            "forward() once for all its members, so the model must say what decides its "
            "computation. Define trace_key() (see ModelBase.trace_key).")
    layout = _layout(template)
    for k, model in enumerate(models[1:], start=1):
        other = trainer._trusted_trace_key(model)  # pylint: disable=protected-access
        if other != key:
            raise ValueError(f"models[{k}] has trace_key {other!r} but models[0] has {key!r}: "
                             "a population has one architecture.")
        theirs = _layout(model)
        if theirs != layout:
            differ = [f"{a[0]} {a[1]} vs {b[0]} {b[1]}" for a, b in zip(layout, theirs)
                      if a != b] or [f"{len(theirs)} weights vs {len(layout)}"]
            raise ValueError(f"models[{k}]'s weights differ from models[0]'s ("
                             f"{'; '.join(differ[:4])}): a population has one architecture.")


# -- The batched forward ----------------------------------------------------------


def _member_matmul(inputs: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor],
                   size: int) -> tf.Tensor:
    """Member-major rows [K*batch, in] times each member's own kernel ([K, in,
    out]) plus its own bias ([K, out]): [K*batch, out]."""
    rows = tf.reshape(inputs, [size, -1, inputs.shape[-1]])
    outputs = tf.matmul(rows, kernel)
    if bias is not None:
        # Here rather than where dense_layer adds its bias, which would need the
        # bias repeated per row; dense_layer then adds the (zero) override.
        outputs = outputs + bias[:, tf.newaxis, :]
    return tf.reshape(outputs, [-1, kernel.shape[-1]])


def _batched_forward(template: ModelBase, stacked: Mapping[str, tf.Tensor], inputs: tf.Tensor,
                     size: int, training: bool,
                     used: Optional[List[str]] = None) -> tf.Tensor:
    """template's forward() for K members at once, on member-major rows.

    Args:
      template: a built model whose forward() uses only dense layers (see
        _batched_reason).
      stacked: weight key -> the members' effective values [K, ...].
      inputs: [K*batch, ...]: member k's examples are rows k*batch ... (k+1)*batch-1.
      size: K.
      training: passed to forward().
      used: if given, collects the name of each dense layer whose matmul ran.

    Returns:
      forward()'s outputs for all members, member-major ([K*batch, ...]).
    """
    matmuls, overrides = {}, {}
    for name in template.layer_names:
        kernel = stacked[name]
        bias = stacked.get(bias_key(name))
        matmul = functools.partial(_member_matmul, kernel=kernel, bias=bias, size=size)
        if used is not None:
            matmul = functools.partial(_recording, matmul, name, used)
        matmuls[name] = matmul
        # The stacked kernel in place of the layer's own, which the matmul does not
        # read: the template's variables (and masks) stay out of the program.
        overrides[name] = kernel
        if bias is not None:
            overrides[bias_key(name)] = tf.zeros([], bias.dtype)
    with template.overriding(weights=overrides, matmuls=matmuls):
        return template(inputs, training=training)


def _recording(matmul: Callable[[tf.Tensor], tf.Tensor], name: str, used: List[str],
               inputs: tf.Tensor) -> tf.Tensor:
    used.append(name)
    return matmul(inputs)


# Members and rows of the trial that decides whether a model runs batched.
_TRIAL_MEMBERS, _TRIAL_ROWS = 3, 4


def _batched_reason(template: ModelBase, example_shape: Sequence[int]) -> Optional[str]:
    """None if _batched_forward computes `template`'s forward() exactly for every
    member, else why not.

    forward() may only use dense layers, elementwise functions and reshapes of
    single examples: each of its rows must depend on that row alone, through the
    dense layers' own matmuls. Dropout (per-member seeds) and convolutions
    (4-D kernels) are refused outright; otherwise a trial on random members and
    examples must use every dense layer and give, per member, what forward()
    gives for that member alone (in training and evaluation).
    """
    if template.dropout_seeds:
        return "dropout (each member draws its own patterns)"
    shapes = template.get_current_weights(include_biases=True)
    names = template.layer_names
    if not names:
        return "no dense layers"
    for name in names:
        if len(np.shape(shapes[name])) != 2:
            return f"layer {name!r} is not dense (kernel shape {np.shape(shapes[name])})"
    if set(shapes) - set(names) - {bias_key(name) for name in names}:
        return "weights that belong to no dense layer"
    rng = np.random.default_rng(0)
    members, rows = _TRIAL_MEMBERS, _TRIAL_ROWS
    # Scaled as initializers scale kernels, so that deep stacks stay in range.
    stacked = {key: (rng.standard_normal((members,) + np.shape(value))
                     / np.sqrt(np.shape(value)[0] if key in names else 1.0)).astype(np.float32)
               for key, value in shapes.items()}
    x = rng.standard_normal((members, rows) + tuple(example_shape)).astype(np.float32)
    try:
        with tf.init_scope():
            for training in (True, False):
                used: List[str] = []
                together = _batched_forward(
                    template, {key: tf.constant(v) for key, v in stacked.items()},
                    tf.constant(x.reshape((members * rows,) + x.shape[2:])), members,
                    training, used).numpy()
                if set(used) != set(names):
                    return f"forward() skips the dense layers {sorted(set(names) - set(used))}"
                for k in range(members):
                    with template.overriding(weights={key: tf.constant(v[k])
                                                      for key, v in stacked.items()}):
                        alone = template(x[k], training=training).numpy()
                    if together.shape[0] != members * rows or alone.shape[0] != rows:
                        return "forward() does not keep one output row per example"
                    ours = together[k * rows:(k + 1) * rows]
                    if ours.shape != alone.shape or not np.allclose(ours, alone, rtol=1e-4,
                                                                   atol=1e-4):
                        return "forward() mixes examples or members"
    except Exception as error:  # pylint: disable=broad-except
        # Whatever the batched form cannot run is run per member.
        return f"the batched trial failed ({type(error).__name__}: {error})"
    return None


# -- The compiled program -------------------------------------------------------


class _PopulationSteps:
    """Compiled training and evaluation of K stacked copies of one architecture.

    Holds one variable per weight (kernel or bias) of shape [K, ...], one mask
    variable per weight (all ones where a member has no mask), the members'
    dropout seeds [K] per dropout layer, and one optimizer over the stacked
    weights. Values are loaded with `load`, so a later population of the same
    shape reuses the traced functions.
    """

    def __init__(self, template: ModelBase, size: int, dataset: DatasetBase,
                 optimizer: Any, jit_compile: bool, batched: bool = False):
        self.template = template
        self.size = size
        # Whether forward() runs once for all members as batched matmuls (see
        # _batched_reason) instead of once per member under tf.vectorized_map.
        self.batched = bool(batched)
        self.in_use = False
        self.optimizer = optimizer
        shapes = template.get_current_weights(include_biases=True)
        self.keys = list(shapes)
        self.kernel_keys = list(template.layer_names)
        self.dropout_layers = sorted(template.dropout_seeds)
        self.weights = [tf.Variable(tf.zeros([size] + list(np.shape(shapes[key]))),
                                    name=f"population_{key}") for key in self.keys]
        self.masks = [tf.Variable(tf.ones([size] + list(np.shape(shapes[key]))),
                                  trainable=False, name=f"population_{key}_mask")
                      for key in self.keys]
        self.seeds = [tf.Variable(tf.zeros([size], tf.int64), trainable=False,
                                  name=f"population_{name}_dropout_seed")
                      for name in self.dropout_layers]
        optimizer.build(self.weights)
        self._x_train, self._y_train, self._splits = trainer._device_data(dataset)  # pylint: disable=protected-access
        labels = dataset.train[1]
        label_spec = tf.TensorSpec([None] + list(labels.shape[1:]), tf.as_dtype(labels.dtype))
        example_spec = tf.TensorSpec([None] + list(dataset.example_shape), tf.float32)
        batch = dataset.train_batch_size
        # Data are arguments, not captures, so that no compiler sees them as constants.
        self._train_steps = tf.function(
            functools.partial(self._train_steps_graph), jit_compile=jit_compile,
            input_signature=[tf.TensorSpec([None] + list(dataset.train[0].shape[1:]), tf.float32),
                             tf.TensorSpec([None] + list(labels.shape[1:]),
                                           tf.as_dtype(labels.dtype)),
                             tf.TensorSpec([None, size, batch], tf.int32),
                             tf.TensorSpec([], tf.int64)])
        self._evaluation_sums = tf.function(
            functools.partial(self._evaluation_sums_graph),
            input_signature=[example_spec, label_spec])
        self._finite = tf.function(functools.partial(self._finite_graph))
        self.jit_compile = bool(jit_compile)
        # (seconds, steps) of training calls that traced and of those that did not.
        self._traced_calls: List[Tuple[float, int]] = []
        self._timed = [0.0, 0]
        self._effective = tf.function(functools.partial(self._effective_graph))

    # Graph parts.

    def _effective_graph(self) -> List[tf.Tensor]:
        return [weight * mask for weight, mask in zip(self.weights, self.masks)]

    def _member_losses(self, x: Optional[tf.Tensor], y: Optional[tf.Tensor],
                       shared: Optional[Tuple[tf.Tensor, tf.Tensor]], training: bool,
                       step: Optional[tf.Tensor]) -> Tuple[tf.Tensor, tf.Tensor]:
        """Per-member (loss, accuracy), [K] each, on per-member batches x, y
        ([K, batch, ...]) or on one shared batch `shared` = (x, y)."""
        if self.batched:
            return self._batched_member_losses(x, y, shared, training)
        template = self.template
        keys, dropout_layers = self.keys, self.dropout_layers

        def member(arguments):
            weights, seeds = arguments[0], arguments[1]
            inputs, labels = (arguments[2], arguments[3]) if shared is None else shared
            overrides = dict(zip(keys, weights))
            overrides.update({dropout_seed_key(name): seed
                              for name, seed in zip(dropout_layers, seeds)})
            if step is not None and dropout_layers:
                overrides[DROPOUT_STEP] = step
            with template.overriding(weights=overrides):
                logits = template(inputs, training=training)
            return template.loss(logits, labels), template.accuracy(logits, labels)

        arguments = (self._effective_graph(), [tf.convert_to_tensor(s) for s in self.seeds])
        if shared is None:
            arguments += (x, y)
        return tf.vectorized_map(member, arguments)

    def _batched_member_losses(self, x: Optional[tf.Tensor], y: Optional[tf.Tensor],
                               shared: Optional[Tuple[tf.Tensor, tf.Tensor]],
                               training: bool) -> Tuple[tf.Tensor, tf.Tensor]:
        """_member_losses by one forward() over all members' rows (member-major)."""
        size, template = self.size, self.template
        if shared is not None:
            # Every member reads the same rows: K copies, one block per member.
            x, labels = shared
            inputs = tf.tile(x, [size] + [1] * (len(x.shape) - 1))
        else:
            inputs = tf.reshape(x, [-1] + list(x.shape[2:]))
            labels = y
        logits = _batched_forward(template, dict(zip(self.keys, self._effective_graph())),
                                  inputs, size, training)
        rest = list(logits.shape[1:])
        if any(d is None for d in rest):
            shape = tf.concat([[size, -1], tf.shape(logits)[1:]], axis=0)
        else:
            shape = [size, -1] + rest
        logits = tf.reshape(logits, shape)

        # The loss and accuracy are the model's own, per member: a mean over that
        # member's batch, as in its single run (so the gradient of the sum of the
        # members' losses is, per member, its single run's gradient).
        if shared is None:
            def member(arguments):
                return (template.loss(arguments[0], arguments[1]),
                        template.accuracy(arguments[0], arguments[1]))
            return tf.vectorized_map(member, (logits, labels))

        def shared_member(member_logits):
            return template.loss(member_logits, labels), template.accuracy(member_logits, labels)
        return tf.vectorized_map(shared_member, logits)

    def _train_steps_graph(self, x_train: tf.Tensor, y_train: tf.Tensor, indices: tf.Tensor,
                           first_step: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        loss_total = tf.zeros([self.size])
        accuracy_total = tf.zeros([self.size])
        for step in tf.range(tf.shape(indices)[0]):
            x = tf.gather(x_train, indices[step])
            y = tf.gather(y_train, indices[step])
            with tf.GradientTape() as tape:
                losses, accuracies = self._member_losses(
                    x, y, None, True, first_step + tf.cast(step, tf.int64))
                # Member k's slice of the gradient of the sum is that of member k's loss.
                total = tf.reduce_sum(losses)
            gradients = tape.gradient(total, self.weights)
            self.optimizer.apply_gradients(zip(gradients, self.weights))
            loss_total += losses
            accuracy_total += accuracies
        count = tf.cast(tf.shape(indices)[0], tf.float32)
        return loss_total / count, accuracy_total / count

    def _evaluation_sums_graph(self, x: tf.Tensor, y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        losses, accuracies = self._member_losses(None, None, (x, y), False, None)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return losses * count, accuracies * count

    def _finite_graph(self) -> tf.Tensor:
        finite = tf.ones([self.size], tf.bool)
        for weight in self.weights:
            flat = tf.reshape(weight, [self.size, -1])
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(flat), axis=1))
        return finite

    # Python side.

    def load(self, models: Sequence[ModelBase], optimizer: Any) -> None:
        """Loads the members' weights, masks and dropout seeds, and `optimizer`'s
        fresh state (a reused engine's optimizer may hold another run's)."""
        values = [m.get_current_weights(include_biases=True) for m in models]
        for key, variable in zip(self.keys, self.weights):
            variable.assign(np.stack([v[key] for v in values]))
        masks = [_masks_of(m) for m in models]
        for key, variable in zip(self.keys, self.masks):
            variable.assign(np.stack([m[key] for m in masks]))
        for name, variable in zip(self.dropout_layers, self.seeds):
            variable.assign(np.array([m.dropout_seeds[name] for m in models], np.int64))
        if optimizer is not self.optimizer:
            optimizer.build(self.weights)
            trainer._assign_all(optimizer.variables, self.optimizer.variables)  # pylint: disable=protected-access

    def train_steps(self, indices: np.ndarray, first_step: int) -> Tuple[np.ndarray, np.ndarray]:
        """One step per row of `indices` ([steps, K, batch]); per-member mean
        (loss, accuracy) over them, float64 [K] each."""
        traces = self._train_steps.experimental_get_tracing_count()
        started = time.perf_counter()
        loss, accuracy = self._train_steps(self._x_train, self._y_train, indices,
                                           tf.constant(first_step, tf.int64))
        loss, accuracy = loss.numpy().astype(np.float64), accuracy.numpy().astype(np.float64)
        seconds, steps = time.perf_counter() - started, int(indices.shape[0])
        if self._train_steps.experimental_get_tracing_count() != traces:
            self._traced_calls.append((seconds, steps))
        else:
            self._timed[0] += seconds
            self._timed[1] += steps
        return loss, accuracy

    def begin(self) -> None:
        """Starts timing a new population's calls (see compile_seconds)."""
        self._traced_calls, self._timed = [], [0.0, 0]

    def compile_seconds(self) -> float:
        """Time spent tracing the training loop since begin(), as trainer's runs
        estimate it: calls that traced, less what their steps took elsewhere."""
        rate = self._timed[0] / self._timed[1] if self._timed[1] else 0.0
        return sum(max(0.0, seconds - steps * rate) for seconds, steps in self._traced_calls)

    def evaluate(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """Per-member (loss, accuracy) over a whole split, float64 [K] each."""
        x, y = self._splits[split]
        count = int(y.shape[0])
        chunk = max(1, int(self.template.evaluation_chunk))
        chunk = max(1, min(chunk, chunk * _EVALUATION_BUDGET // self.size))
        loss_sum, correct = np.zeros(self.size), np.zeros(self.size)
        for start in range(0, count, chunk):
            loss, accurate = self._evaluation_sums(x[start:start + chunk], y[start:start + chunk])
            loss_sum += loss.numpy().astype(np.float64)
            correct += accurate.numpy().astype(np.float64)
        return loss_sum / count, correct / count

    def finite(self) -> np.ndarray:
        """Per member, whether all its weights are finite."""
        return self._finite().numpy()

    def effective(self) -> Dict[str, np.ndarray]:
        """key -> effective values [K, ...] (kernels and biases)."""
        return {key: value.numpy() for key, value in zip(self.keys, self._effective())}

    def raw(self) -> Dict[str, np.ndarray]:
        return {key: variable.numpy() for key, variable in zip(self.keys, self.weights)}


def _masks_of(model: ModelBase) -> Dict[str, np.ndarray]:
    """Weight key -> the member's mask (ones where it has none), kernels and biases.

    Read once per member: each of the model's mask properties reads all its
    variables."""
    masks = dict(model.masks)
    bias_masks = model.bias_masks
    for name, bias in model._biases.items():  # pylint: disable=protected-access
        key = bias_key(name)
        masks[key] = bias_masks[key] if key in bias_masks else np.ones(bias.shape, np.float32)
    return masks


_ENGINES: "weakref.WeakKeyDictionary[DatasetBase, Dict[Hashable, _PopulationSteps]]" = (
    weakref.WeakKeyDictionary())
_ENGINES_LOCK = threading.Lock()


# Per architecture (engine key and example shape): why it cannot run batched, or None.
_BATCHED_REASONS: Dict[Hashable, Optional[str]] = {}


def batched_reason(model: ModelBase, example_shape: Sequence[int]) -> Optional[str]:
    """Why a population of `model`'s architecture would train with
    tf.vectorized_map rather than as batched matmuls; None if it trains batched.

    Args:
      model: a built member (its weights are not changed).
      example_shape: the shape of one example, without the batch dimension.
    """
    trace_key = trainer._trusted_trace_key(model)  # pylint: disable=protected-access
    key = None
    if trace_key is not None:
        # What trainer._engine_key holds of the model: its class, trace key and the
        # functions a trace calls (one patched after a trial is another model).
        functions = tuple(getattr(trainer._defined_in(type(model), name), name)  # pylint: disable=protected-access
                          for name in trainer._TRACED)  # pylint: disable=protected-access
        key = (type(model), trace_key, tuple(_layout(model)), functions,
               tuple(int(d) for d in example_shape))
        if key in _BATCHED_REASONS:
            return _BATCHED_REASONS[key]
    reason = _batched_reason(model, example_shape)
    if key is not None:
        _BATCHED_REASONS[key] = reason
    if reason is not None:
        logger.debug("%s populations train with tf.vectorized_map: %s",
                     type(model).__name__, reason)
    return reason


def _engine(dataset: DatasetBase, models: Sequence[ModelBase], optimizer: Any,
            jit_compile: Optional[bool]) -> _PopulationSteps:
    """A loaded engine for `models`: one traced before for the same data set,
    architecture, size and optimizer setting, or a new one."""
    template = models[0]
    batched = batched_reason(template, dataset.example_shape) is None
    if jit_compile is None:
        jit_compile = _BATCHED_JIT if batched else False
    key = trainer._engine_key(template, optimizer)  # pylint: disable=protected-access
    if key is not None:
        # The layout of the weights, not of the model's variables: members with and
        # without masks (mask variables) share an engine, whose masks are stacked.
        key = key[:2] + (tuple(_layout(template)),) + key[3:] + (len(models), bool(jit_compile),
                                                                  batched)
    with _ENGINES_LOCK:
        engines = _ENGINES.setdefault(dataset, {})
        engine = engines.get(key) if key is not None else None
        if engine is None or engine.in_use:
            # A private template, so that later populations never touch a caller's model.
            engine = _PopulationSteps(copy.deepcopy(template), len(models), dataset,
                                      optimizer, jit_compile, batched)
            if key is not None and key not in engines:
                engines[key] = engine
                while len(engines) > _ENGINES_PER_DATASET:
                    engines.pop(next(iter(engines)))
        else:
            engines[key] = engines.pop(key)  # most recently used last
        engine.in_use = True
    try:
        engine.load(models, optimizer)
        engine.begin()
    except BaseException:
        engine.in_use = False
        raise
    return engine


def _write_back(engine: _PopulationSteps, models: Sequence[ModelBase], iteration: int) -> None:
    """Copies the trained values into the members' models (as trainer.train leaves
    its model trained) and sets their dropout counters to where training ended."""
    raw = engine.raw()
    for k, model in enumerate(models):
        for key, values in raw.items():
            if key.endswith(BIAS_SUFFIX):
                variable = model._biases[key[:-len(BIAS_SUFFIX)]]  # pylint: disable=protected-access
            else:
                variable = model._kernels[key]  # pylint: disable=protected-access
            variable.assign(values[k])
        model.set_training_step(iteration)


class _Finite:
    """What trainer._check_finite asks of its steps, for one member."""

    def __init__(self, finite: bool):
        self._finite = bool(finite)

    def weights_finite(self) -> bool:
        return self._finite


# -- The public function ----------------------------------------------------------


@trainer.reports_disk_need
def train_population(datasets: Union[DatasetBase, Sequence[DatasetBase]],
                     models: Sequence[ModelBase], optimizer_fn: Callable[[], Any],
                     training_len: Sequence, output_dirs: Sequence[str], *,
                     save_summaries: bool = True, save_network: bool = True,
                     test_interval: Optional[int] = 100,
                     validate_interval: Optional[int] = None,
                     train_interval: Optional[int] = None,
                     run_infos: Optional[Sequence[Optional[Mapping]]] = None,
                     progress: progress_lib.Progress = None, progress_label: str = "",
                     iterations_after: int = 0, start_iteration: int = 0,
                     snapshot_iterations: Sequence[int] = (),
                     jit_compile: Optional[bool] = None,
                     raise_on_divergence: bool = True
                     ) -> List[Union[trainer.TrainResult, DivergedError]]:
    """Trains K networks of one architecture together; writes K run directories.

    Member k trains as ``trainer.train(datasets[k], models[k], optimizer_fn,
    training_len, output_dirs[k], ...)`` would (same batches, same masks and
    initial weights, same metrics at the same iterations, same files), up to
    floating-point rounding, with ``"population": {"size": K, "member": k}``
    added to its run_info. Its done.json's ``seconds`` is the population's
    wall time.

    Args:
      datasets: one DatasetBase for all members, or one per member. They must
        hold the same arrays (the same objects, or equal arrays) and batch
        size; they may differ in train_order_seed: each member trains on
        exactly the batches its data set's batch_indices gives.
      models: the members: ModelBase instances of one class with equal
        trace_key() and equal weight shapes (each its own seed, masks,
        presets). Dense models are fast; conv models and dropout work, slowly.
      optimizer_fn: makes the optimizer (called once: one optimizer over the
        stacked weights); an elementwise Keras optimizer (SGD, momentum, Adam,
        ...) without clipnorm/global_clipnorm.
      training_len: ('iterations', N) or ('epochs', N).
      output_dirs: one run directory per member, all different. If any holds
        a complete run, FileExistsError before anything is written;
        incomplete ones are redone.
      save_summaries, save_network, test_interval, validate_interval,
        train_interval, progress_label, iterations_after, start_iteration,
        snapshot_iterations: as in trainer.train, for every member.
      run_infos: per member, the run_info written into its done.json.
      progress: as in trainer.train; a function is called as
        progress(iteration, total, latest) with the mean over the members
        still training of each split's latest loss and accuracy.
      jit_compile: compile the training loop with XLA. None (the default)
        chooses per path: see the module docstring ("XLA").
      raise_on_divergence: if a member's loss or weights become non-finite,
        it is recorded as diverged exactly as trainer.train records it
        (metrics so far and diverged.json, no done.json) and the others go
        on; at the end, True raises PopulationDivergedError (which holds
        every member's result), False returns the DivergedError in that
        member's place.

    Returns:
      One trainer.TrainResult per member (or DivergedError, see
      raise_on_divergence). Each model holds its trained values.

    Raises:
      ValueError: no members, lengths that differ, members of different
        architectures, data sets with different arrays, an optimizer that
        would mix members, or a bad setting (before anything is written).
      FileExistsError: a member's output directory holds a complete run.
    """
    models = list(models)
    size = len(models)
    if size == 0:
        raise ValueError("a population needs at least one model (got none).")
    if isinstance(datasets, DatasetBase):
        datasets = [datasets] * size
    datasets, output_dirs = list(datasets), [os.fspath(d) for d in output_dirs]
    run_infos = [None] * size if run_infos is None else list(run_infos)
    for name, given in (("datasets", datasets), ("output_dirs", output_dirs),
                        ("run_infos", run_infos)):
        if len(given) != size:
            raise ValueError(f"{len(given)} {name} for {size} models: give one per member.")
    if len({os.path.abspath(d) for d in output_dirs}) != size:
        raise ValueError("two members share an output directory: each member needs its own.")
    _check_datasets(datasets)
    _check_models(models, datasets[0].example_shape)
    optimizer = optimizer_fn()
    _check_optimizer(optimizer)
    complete = [d for d in output_dirs if runs.is_complete(d)]
    if complete:
        raise FileExistsError(
            f"{len(complete)} of the population's output directories already hold a "
            f"complete run ({complete[0]}{', ...' if len(complete) > 1 else ''}); complete "
            "runs are never overwritten. Choose other directories, or delete those runs.")
    reporter = progress_lib.Reporter(progress, progress_label, iterations_after)
    run_infos = [dict(info or {}, population={"size": size, "member": k})
                 for k, info in enumerate(run_infos)]

    def prepare(k: int) -> Tuple[int, Network]:
        return trainer.prepare_run(
            datasets[k], models[k], training_len, output_dirs[k],
            validate_interval=validate_interval, test_interval=test_interval,
            save_network=save_network, start_iteration=start_iteration,
            snapshot_iterations=snapshot_iterations,
            check_loss=k == 0)  # the members share the architecture and the labels

    # The first member alone: a setting prepare_run refuses is refused before any
    # directory is touched. The others in threads, which overlap their file syncs.
    prepared = [prepare(0)]
    with concurrent.futures.ThreadPoolExecutor(_WRITER_THREADS) as pool:
        prepared += list(pool.map(prepare, range(1, size)))
    total = prepared[0][0]
    initial_weights = [initial for _, initial in prepared]

    engine = _engine(datasets[0], models, optimizer, jit_compile)
    recorders = [trainer._Recorder(d, save_summaries) for d in output_dirs]  # pylint: disable=protected-access
    snapshots: List[Dict[int, Network]] = [{} for _ in range(size)]
    outcomes: List[Optional[DivergedError]] = [None] * size
    started = time.time()
    try:
        try:
            _population_loop(engine, datasets, total, recorders, output_dirs, outcomes,
                             snapshots, run_infos, test_interval=test_interval,
                             validate_interval=validate_interval,
                             train_interval=train_interval, reporter=reporter,
                             start=start_iteration,
                             snapshot_iterations=tuple(snapshot_iterations),
                             save_network=save_network)
        except BaseException:
            for k, recorder in enumerate(recorders):
                if outcomes[k] is None:
                    recorder.save()  # An interrupted run keeps its metrics so far.
            raise
        finally:
            try:
                _write_back(engine, models, total)
            finally:
                engine.in_use = False
        seconds = time.time() - started
        extras = _record_extras(engine)
        final_values = engine.effective()

        def finish(k: int) -> Union[trainer.TrainResult, DivergedError, None]:
            if outcomes[k] is not None:
                return outcomes[k]
            output_dir = output_dirs[k]
            final_weights = {key: final_values[key][k] for key in engine.kernel_keys}
            if runs.is_complete(output_dir):
                return None
            if save_network:
                save_restore.save_network(paths.final(output_dir), final_weights)
            recorders[k].save()
            record = trainer._write_record(  # pylint: disable=protected-access
                output_dir=output_dir, total=total, training_len=training_len,
                seconds=seconds, model=models[k], dataset=datasets[k],
                final_metrics=recorders[k].latest(), run_info=run_infos[k],
                start_iteration=start_iteration, snapshot_iterations=snapshot_iterations,
                snapshot_layers=next(iter(snapshots[k].values()), {}).keys(), **extras)
            return trainer.TrainResult(
                initial_weights[k], final_weights, copy.deepcopy(recorders[k].metrics),
                record, output_dir, snapshots[k])

        with concurrent.futures.ThreadPoolExecutor(_WRITER_THREADS) as pool:
            results = list(pool.map(finish, range(size)))
        taken = [output_dirs[k] for k, result in enumerate(results) if result is None]
    finally:
        for recorder in recorders:
            recorder.close()
    if taken:
        raise FileExistsError(
            f"{', '.join(taken)} were completed by another process while this population "
            "trained; their results are kept and this population's are discarded.")
    if raise_on_divergence and any(isinstance(r, DivergedError) for r in results):
        raise PopulationDivergedError(results)
    return results


def _record_extras(engine: _PopulationSteps) -> Dict[str, Any]:
    """What _write_record takes besides a single run's facts: what compiled the run
    and how long compiling took."""
    return {"xla": {"setting": "on" if engine.jit_compile else "off",
                    "training": engine.jit_compile, "evaluation": False,
                    "sparse_layers": []},
            "speed": {"compile_seconds": round(engine.compile_seconds(), 4)}}


def _mean_latest(recorders: Sequence[Any], active: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """Each split's latest loss and accuracy, averaged over the active members."""
    latest = [recorders[k].latest() for k in active]
    if not latest:
        return {}
    merged = {}
    for split, values in latest[0].items():
        rows = [entry[split] for entry in latest if split in entry]
        merged[split] = {"iteration": values["iteration"],
                         "loss": float(np.mean([r["loss"] for r in rows])),
                         "accuracy": float(np.mean([r["accuracy"] for r in rows]))}
    return merged


def _batch_indices(datasets: Sequence[DatasetBase], iteration: int, count: int) -> np.ndarray:
    """[count, K, batch]: member k's rows are datasets[k].batch_indices(...)."""
    by_order: Dict[Tuple[int, int], np.ndarray] = {}
    rows = []
    for dataset in datasets:
        key = (id(dataset), dataset.train_order_seed)
        if key not in by_order:
            by_order[key] = dataset.batch_indices(iteration, count)
        rows.append(by_order[key])
    return np.ascontiguousarray(np.stack(rows, axis=1), dtype=np.int32)


def _population_loop(engine: _PopulationSteps, datasets: Sequence[DatasetBase], total: int,
                     recorders: Sequence[Any], output_dirs: Sequence[str],
                     outcomes: List[Optional[DivergedError]],
                     snapshots: List[Dict[int, Network]], run_infos: Sequence[Mapping], *,
                     test_interval: Optional[int], validate_interval: Optional[int],
                     train_interval: Optional[int], reporter: progress_lib.Reporter,
                     start: int, snapshot_iterations: Sequence[int],
                     save_network: bool) -> None:
    """trainer._training_loop for every member at once: the same evaluations,
    records and divergence checks at the same iterations, per member; a member
    that diverges is recorded as trainer.train records it and left out from then
    on (its slice keeps being computed but nothing of it is read)."""
    size = len(recorders)
    dataset = datasets[0]
    intervals = {"test": test_interval, "validate": validate_interval if dataset.validate
                 is not None else None}
    reporter.start(total, start)
    last_save = time.time()

    def active() -> List[int]:
        return [k for k in range(size) if outcomes[k] is None]

    for split, interval in intervals.items():
        if interval:
            losses, accuracies = engine.evaluate(split)
            for k in range(size):
                recorders[k].add(split, start, losses[k], accuracies[k])
    train_loss, train_accuracy = np.zeros(size), np.zeros(size)
    train_steps_done = 0
    iteration = start
    for boundary in trainer._boundaries(total, [test_interval, intervals["validate"],  # pylint: disable=protected-access
                                                train_interval], start, snapshot_iterations):
        count = boundary - iteration
        loss, accuracy = engine.train_steps(_batch_indices(datasets, iteration, count),
                                            iteration)
        iteration = boundary
        # Weighted by steps, as in the trainer: per-step means however split.
        train_loss += loss * count
        train_accuracy += accuracy * count
        train_steps_done += count
        evaluated = False
        losses = [{"train": float(loss[k])} for k in range(size)]
        for split, interval in intervals.items():
            if trainer._due(iteration, interval, total):  # pylint: disable=protected-access
                split_losses, split_accuracies = engine.evaluate(split)
                for k in active():
                    recorders[k].add(split, iteration, split_losses[k], split_accuracies[k])
                    losses[k][split] = float(split_losses[k])
                evaluated = True
        finite = engine.finite()
        for k in active():
            try:
                trainer._check_finite(_Finite(finite[k]), output_dirs[k], iteration, losses[k])  # pylint: disable=protected-access
            except DivergedError as error:
                recorders[k].save()
                runs.write_diverged(output_dirs[k], {"iteration": error.iteration,
                                                     "reason": error.what,
                                                     "run_info": dict(run_infos[k])})
                outcomes[k] = error
        if iteration in snapshot_iterations and active():
            effective = engine.effective()
            for k in active():
                snapshots[k][iteration] = {key: values[k] for key, values in effective.items()}
                if save_network:
                    save_restore.save_network(paths.rewind(output_dirs[k], iteration),
                                              snapshots[k][iteration])
        record_train = (trainer._due(iteration, train_interval, total) if train_interval  # pylint: disable=protected-access
                        else evaluated or iteration == total)
        if record_train:
            for k in active():
                recorders[k].add("train", iteration, train_loss[k] / train_steps_done,
                                 train_accuracy[k] / train_steps_done)
            train_loss[:], train_accuracy[:] = 0.0, 0.0
            train_steps_done = 0
        reporter.update(iteration, total, _mean_latest(recorders, active()))
        if time.time() - last_save >= progress_lib.LOG_SECONDS:
            for k in active():
                recorders[k].save()
            last_save = time.time()
