"""The engine of a population: K networks of one architecture in one compiled program.

`trainer.train_population` trains with it (through `loop.train_members`, the
loop `trainer.train` uses with K = 1). Each member has
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

As in the single engine, the iterations between two evaluations run in one
tf.function (a tf.range loop over rows of batch indices into the training set,
which stays on the device), and the compiled functions are kept per data set
and reused by later populations of the same architecture, size and optimizer
setting (the levels of a lottery population).

XLA. ``jit_compile=None`` (the default; ``--xla=auto`` for lottery
populations) chooses per path (`population_xla`), and done.json records the
choice as single runs do: ``"xla": {"setting": "auto", "training": ...}``.
Both paths run without XLA: on a 2-core CPU the batched path's steady step
took 3.6 ms without and 41 ms with XLA for 1,000 tiny 2-10-1 networks, and
30 ms without and 148 ms with XLA for 16 LeNet-300-100s (bench_population
--jit, one run; XLA's CPU code for batched matmuls of many small matrices is
slow). The vectorized_map path ran about 3x slower under XLA for
LeNet-300-100 and no faster for tiny networks, and compiling the training
step alone with XLA made XLA constant-fold the vectorized program for
minutes. LOTTERY_TICKET_XLA_AUTO=on|off overrides 'auto' as for single runs.
On a GPU 'auto' is off too, until it is measured there. Most of those XLA
figures were the members' losses, not the matmuls: under XLA
tf.vectorized_map's per-member loss took about 48 ms of a 50 ms step (4
LeNets), so a batched program compiled with XLA now calls the model's loss
once per member (up to UNROLLED_LOSSES_UP_TO members); measured so, 16 dense
LeNets took about 11 ms a step with XLA and without (interleaved runs, best of
five). The default for dense populations is unchanged.

Sparse layers. A lottery population at a few percent of its weights would
still do dense batched matmuls. On the batched path, a dense layer where every
member's mask keeps fewer than SPARSE_BELOW (3%) of its weights trains as one
vector of all members' survivors (`stacked_sparse`): member k's survivor
(r, c) is row k*in + r of the member-major transposed inputs and unit
k*out + c of a segment sum into K*out units (the block-diagonal "super
layer"), all members' survivors concatenated and padded to a bucket size
(`sparse.bucket`). Such a program is compiled with XLA (the gather and
segment sum are 3-5x slower than the dense product without it), so sparse
layers are used when the training loop may be: ``jit_compile=True``, or None
unless LOTTERY_TICKET_XLA_AUTO=off (the test suite's setting), and never on
the vectorized_map path. The optimizer updates the survivor vectors (its
state per survivor, fresh per population); pruned weights are never
represented, so they stay exactly 0; `sync` writes the survivors back into
the stacked kernels before anything reads them (member_weights, finish,
effective, raw, a dense evaluation), and the finite check reads the
survivors per member. Evaluation goes through the survivors too (XLA, the
split laid out in chunks on a leading axis by `cache.chunked_split`, the first
layer gathering the shared examples untransposed) when the survivors'
compiled sizes are below SPARSE_EVALUATION_BELOW (2.5%) of the stacked
kernels (single runs evaluate so below 5%, but for 16 members the survivors'
evaluation lost to the dense batched one at 3.6%); otherwise the written-back kernels are evaluated
densely without XLA. done.json's "xla" records the sparse layers
(``"sparse_layers"``) and ``"evaluation": true`` for an evaluation through
the survivors. A compiled sparse engine serves later populations whose
survivors fit its sizes (`sparse.sparse_fits`: the same layers, each at most
SPARSE_SLACK times bigger than needed, the same evaluation), so the levels
of a lottery population compile every few levels, not at each. On a 2-core
CPU (bench_population --sparse_only=1, one run on a quiet machine; runs
while other work shared it moved single figures by up to 2x), 16
LeNet-300-100s (output layer at the paper's half rate, dense) took 3.4 ms a
step at 1% against 10.4 ms dense, 8.0 against 12.3 ms at 2% and 12.2 against
10.8 ms at 3.6%; an evaluation of the test set 141 against 465 ms at 1%, 360
against 464 ms at 2%; 4 LeNets 0.9 against 2.6 ms a step and 24 against 120
ms an evaluation at 1%.

Speed. Both paths end in batched matmuls (vectorized_map turns each member's
matmul into one), and on a 2-core CPU their steady steps took about the same
time (3.5 ms for the 1,000 tiny networks, 20 ms for 16 LeNets); the batched
path is the simpler program, and the one to build on. For many tiny
networks most of a population's time is per member and outside the steps
(bench_population's ``population_parts``): building each model (its own
variables and seeded initializers: about 5-6 s for 1,000 tiny networks) and
writing each run directory (13 files and 4 directories per member, as in
single runs: 10-30 s for 1,000 members on this shared disk, against under 1 s
of training calls for 100 steps). The files are bound by the disk's metadata
operations: the same files in a tmpfs took about 3 s, and writing them
unsynced with one syncfs at the end was no faster than 8 threads each syncing
its own. The engine reads the members' weights stacked (`stacked_weights`),
not member by member.
"""

import copy
import functools
import os
import time
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (BIAS_SUFFIX, DROPOUT_STEP, ModelBase, bias_key,
                                                   dropout_seed_key)
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training.batched import batched_forward, batched_reason
from lottery_ticket.foundations.training.engine import Engine
from lottery_ticket.foundations.training.members import reads_own_variables, weight_layout
from lottery_ticket.foundations.training.record import CompileTimer
from lottery_ticket.foundations.training.single import flattened_from, rows
from lottery_ticket.foundations.training import sparse as sparse_lib
from lottery_ticket.foundations.training.sparse import bucket, sparse_evaluates, sparse_fits
from lottery_ticket.foundations.training.stacked_sparse import (StackedSparseLayer,
                                                                stacked_sparse_layout)
from lottery_ticket.foundations.training.xla import XLA_AUTO_VARIABLE


# Engines kept per data set (least recently used dropped first).
ENGINES_PER_DATASET = 4
ENGINES = cache_lib.EngineCache(ENGINES_PER_DATASET)
# A whole-split evaluation holds K times a single run's activations; chunks of
# about this many member-examples keep that near a single run's memory.
EVALUATION_BUDGET = 8
# jit_compile's default for populations that run batched (see the module docstring).
BATCHED_JIT = False
# A batched population trains a dense layer as one vector of all members' survivors
# (stacked_sparse) when every member's mask keeps fewer than this fraction of its
# weights, compiled with XLA (see the module docstring, "Sparse layers"); 0: never.
# Below single runs' 5%: on a 2-core CPU (interleaved runs, best of five calls) the
# survivor vector's step against the dense batched step of 16 LeNet-300-100s was
# 1.7x faster at 2%, 1.3x at 2.5%, and slower from 3% (0.7-0.9x at 3-3.6%); for 4
# LeNets 1.5x faster at 3%, even at 3.6%, slower at 4.5%.
SPARSE_BELOW = 0.03
# A sparse population evaluates through its survivors when their compiled sizes
# are below this fraction of the sparse layers' stacked kernels. Its own, below
# single runs' 5%: for 16 LeNets the survivors' evaluation was 0.75x the dense
# batched one at 3.6% and 1.3x at 2% (bench_population --sparse_only=1).
SPARSE_EVALUATION_BELOW = 0.025
# Under XLA, populations of up to this many members compute their losses with one
# call of the model's loss per member rather than with tf.vectorized_map.
UNROLLED_LOSSES_UP_TO = 64
# Examples per chunk of a sparse population's evaluation (all members at once).
SPARSE_CHUNK = sparse_lib.SPARSE_EVALUATION_CHUNK

# -- The compiled program -------------------------------------------------------


class StackedEngine(Engine):
    """Compiled training and evaluation of K stacked copies of one architecture.

    Holds one variable per weight (kernel or bias) of shape [K, ...], one mask
    variable per weight (all ones where a member has no mask), the members'
    dropout seeds [K] per dropout layer, and one optimizer over the stacked
    weights (a sparse layer's survivor vector in place of its stacked kernel).
    Values are loaded with `load`, so a later population of the same shape
    reuses the traced functions.

    Args:
      template: a member, whose architecture the engine compiles.
      size: K, the number of members.
      dataset: the members' data (its arrays).
      optimizer: the population's optimizer.
      jit_compile: compile the training loop with XLA.
      batched: run forward once for all members (see batched_trial).
      sparse_sizes: layer -> compiled size of its survivor vector, for the
        layers trained as one vector of all members' survivors (batched only).
      sparse_evaluation: evaluate through those survivors.
    """

    def __init__(self, template: ModelBase, size: int, dataset: DatasetBase,
                 optimizer: Any, jit_compile: bool, batched: bool = False,
                 sparse_sizes: Optional[Mapping[str, int]] = None,
                 sparse_evaluation: bool = False):
        self.template = template
        self.size = size
        # Whether forward() runs once for all members as batched matmuls (see
        # batched_trial) instead of once per member under tf.vectorized_map.
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
        # Layers trained as one vector of all members' survivors (batched path only).
        sizes = dict(sparse_sizes or {}) if self.batched else {}
        self._sparse = [StackedSparseLayer(name, size, int(np.shape(shapes[name])[0]),
                                           int(np.shape(shapes[name])[1]), sizes[name])
                        for name in self.kernel_keys if name in sizes]
        self._sparse_keys = {layer.name for layer in self._sparse}
        # What the optimizer updates: the sparse layers' survivor vectors in place
        # of their stacked kernels, which hold the survivors only after sync().
        self.trainables = ([w for key, w in zip(self.keys, self.weights)
                            if key not in self._sparse_keys]
                           + [layer.values for layer in self._sparse])
        self._dirty = False  # whether survivor vectors are newer than their kernels
        self.sparse_evaluation = bool(self._sparse) and bool(sparse_evaluation)
        optimizer.build(self.trainables)
        self._x_train, self._y_train, self._splits = cache_lib.device_data(dataset)
        labels = dataset.train[1]
        batch = dataset.train_batch_size
        # Data are arguments, not captures, so that no compiler sees them as constants.
        self._train_steps = tf.function(
            functools.partial(self._train_steps_graph), jit_compile=jit_compile,
            input_signature=[tf.TensorSpec([None] + list(dataset.train[0].shape[1:]), tf.float32),
                             tf.TensorSpec([None] + list(labels.shape[1:]),
                                           tf.as_dtype(labels.dtype)),
                             tf.TensorSpec([None, size, batch], tf.int32),
                             tf.TensorSpec([], tf.int64)])
        # One function per split, evaluating all of it in one call (its chunks in a
        # graph loop); the split is an argument of its exact shape, so each traces once.
        if self.sparse_evaluation:
            self._chunked = {split: cache_lib.chunked_split(dataset, split, SPARSE_CHUNK)
                             for split in self._splits}
            # Compiled with XLA (sparse programs are only fast under XLA); the chunks
            # are indexed on their leading axis (see cache.chunked_split).
            self._evaluations = {
                split: tf.function(functools.partial(self._sparse_evaluation_graph),
                                   jit_compile=True,
                                   input_signature=[tf.TensorSpec(a.shape, a.dtype)
                                                    for a in arrays])
                for split, arrays in self._chunked.items()}
        else:
            self._evaluations = {
                split: tf.function(functools.partial(self._evaluation_graph),
                                   input_signature=[tf.TensorSpec(x.shape, x.dtype),
                                                    tf.TensorSpec(y.shape, y.dtype)])
                for split, (x, y) in self._splits.items()}
        self._finite = tf.function(functools.partial(self._finite_graph))
        self.jit_compile = bool(jit_compile)
        # What the population asked for ('auto', 'on' or 'off'), set per population
        # (populations asking 'auto' and 'off' share an engine): done.json's "xla".
        self.xla_setting = "on" if self.jit_compile else "off"
        self.timer = CompileTimer()
        self._effective = tf.function(functools.partial(self._effective_graph))

    # Graph parts.

    def _effective_graph(self) -> List[tf.Tensor]:
        return [weight * mask for weight, mask in zip(self.weights, self.masks)]

    def _member_losses(self, x: Optional[tf.Tensor], y: Optional[tf.Tensor],
                       shared: Optional[Tuple[tf.Tensor, tf.Tensor]], training: bool,
                       step: Optional[tf.Tensor], transposed: Optional[tf.Tensor] = None,
                       compiled: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
        """Per-member (loss, accuracy), [K] each, on per-member batches x, y
        ([K, batch, ...]) or on one shared batch `shared` = (x, y) (whose
        examples, flattened and transposed, are `transposed` if given).
        `compiled`: the graph is compiled with XLA (its sparse layers then
        compute from their survivors; otherwise from the synced kernels)."""
        if self.batched:
            return self._batched_member_losses(x, y, shared, training, transposed, compiled)
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
                               training: bool, transposed: Optional[tf.Tensor] = None,
                               compiled: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
        """_member_losses by one forward() over all members' rows (member-major)."""
        size, template = self.size, self.template
        if shared is not None:
            # Every member reads the same rows: K copies, one block per member.
            x, labels = shared
            inputs = tf.tile(x, [size] + [1] * (len(x.shape) - 1))
        else:
            inputs = tf.reshape(x, [-1] + list(x.shape[2:]))
            labels = y
        if compiled:
            products = {layer.name: self._sparse_product(layer, inputs, transposed)
                        for layer in self._sparse}
            weights = self._forward_weights()
        else:
            # Without XLA the survivors' gather and segment sum run 3-5x slower
            # than the dense product of the kernels they were written back to.
            products, weights = {}, dict(zip(self.keys, self._effective_graph()))
        logits = batched_forward(template, weights, inputs, size, training, products=products)
        rest = list(logits.shape[1:])
        if any(d is None for d in rest):
            shape = tf.concat([[size, -1], tf.shape(logits)[1:]], axis=0)
        else:
            shape = [size, -1] + rest
        logits = tf.reshape(logits, shape)

        # The loss and accuracy are the model's own, per member: a mean over that
        # member's batch, as in its single run (so the gradient of the sum of the
        # members' losses is, per member, its single run's gradient).
        if compiled and size <= UNROLLED_LOSSES_UP_TO:
            # Under XLA tf.vectorized_map's loss took about 48 ms a step on a 2-core
            # CPU (K = 4 LeNets; the rest of the step 2.5 ms): one call per member.
            pairs = [(template.loss(logits[k], labels if shared is not None else labels[k]),
                      template.accuracy(logits[k],
                                        labels if shared is not None else labels[k]))
                     for k in range(size)]
            return tf.stack([p[0] for p in pairs]), tf.stack([p[1] for p in pairs])
        if shared is None:
            def member(arguments):
                return (template.loss(arguments[0], arguments[1]),
                        template.accuracy(arguments[0], arguments[1]))
            return tf.vectorized_map(member, (logits, labels))

        def shared_member(member_logits):
            return template.loss(member_logits, labels), template.accuracy(member_logits, labels)
        return tf.vectorized_map(shared_member, logits)

    def _forward_weights(self) -> Dict[str, tf.Tensor]:
        """Key -> the stacked values the batched forward reads; a sparse layer's
        kernel is not read (its product comes from its survivors)."""
        return {key: (weight if key in self._sparse_keys else weight * mask)
                for key, weight, mask in zip(self.keys, self.weights, self.masks)}

    @staticmethod
    def _sparse_product(layer: StackedSparseLayer, inputs: tf.Tensor,
                        transposed: Optional[tf.Tensor]):
        """The layer's product; from `transposed` (the shared examples, flattened
        and transposed) where its inputs are the forward's inputs themselves."""
        if transposed is None:
            return layer.product

        def product(rows_in: tf.Tensor) -> tf.Tensor:
            # Every member reads the same examples: gather them once, untiled and
            # already transposed, instead of transposing K copies.
            if (flattened_from(rows_in, inputs)
                    and transposed.shape[0] == layer.inputs == rows_in.shape[-1]):
                return layer.shared_product(transposed)
            return layer.product(rows_in)
        return product

    def _train_steps_graph(self, x_train: tf.Tensor, y_train: tf.Tensor, indices: tf.Tensor,
                           first_step: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        loss_total = tf.zeros([self.size])
        accuracy_total = tf.zeros([self.size])
        for step in tf.range(tf.shape(indices)[0]):
            x = tf.gather(x_train, indices[step])
            y = tf.gather(y_train, indices[step])
            with tf.GradientTape() as tape:
                losses, accuracies = self._member_losses(
                    x, y, None, True, first_step + tf.cast(step, tf.int64),
                    compiled=self.jit_compile)
                # Member k's slice of the gradient of the sum is that of member k's loss.
                total = tf.reduce_sum(losses)
            gradients = tape.gradient(total, self.trainables)
            self.optimizer.apply_gradients(zip(gradients, self.trainables))
            loss_total += losses
            accuracy_total += accuracies
        count = tf.cast(tf.shape(indices)[0], tf.float32)
        return loss_total / count, accuracy_total / count

    def _evaluation_sums_graph(self, x: tf.Tensor, y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        losses, accuracies = self._member_losses(None, None, (x, y), False, None)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return losses * count, accuracies * count

    def _evaluation_graph(self, x: tf.Tensor, y: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Per-member (loss sum, correct count) over all of (x, y), float64 [K]
        each, summed chunk by chunk in order (as the host summed them before)."""
        count = int(y.shape[0])
        chunk = self.evaluation_chunk()
        loss_sum, correct = tf.zeros([self.size], tf.float64), tf.zeros([self.size], tf.float64)
        full = count // chunk
        for index in tf.range(full):
            begin = index * chunk
            loss, accurate = self._evaluation_sums_graph(rows(x, begin, chunk),
                                                         rows(y, begin, chunk))
            loss_sum += tf.cast(loss, tf.float64)
            correct += tf.cast(accurate, tf.float64)
        if count % chunk:
            loss, accurate = self._evaluation_sums_graph(x[full * chunk:], y[full * chunk:])
            loss_sum += tf.cast(loss, tf.float64)
            correct += tf.cast(accurate, tf.float64)
        return loss_sum, correct

    def _sparse_evaluation_graph(self, x_chunks: tf.Tensor, transposed_chunks: tf.Tensor,
                                 y_chunks: tf.Tensor, x_tail: tf.Tensor,
                                 transposed_tail: tf.Tensor, y_tail: tf.Tensor
                                 ) -> Tuple[tf.Tensor, tf.Tensor]:
        """_evaluation_graph through the sparse layers' survivors, on a split laid
        out by cache.chunked_split (chunks summed in order, then the tail)."""
        loss_sum, correct = tf.zeros([self.size], tf.float64), tf.zeros([self.size], tf.float64)

        def add(x, transposed, y):
            losses, accuracies = self._member_losses(None, None, (x, y), False, None,
                                                     transposed, compiled=True)
            count = tf.cast(tf.shape(y)[0], tf.float32)
            return (tf.cast(losses * count, tf.float64), tf.cast(accuracies * count, tf.float64))

        for index in tf.range(tf.shape(y_chunks)[0]):
            loss, accurate = add(x_chunks[index], transposed_chunks[index], y_chunks[index])
            loss_sum += loss
            correct += accurate
        if y_tail.shape[0]:
            loss, accurate = add(x_tail, transposed_tail, y_tail)
            loss_sum += loss
            correct += accurate
        return loss_sum, correct

    def _finite_graph(self) -> tf.Tensor:
        finite = tf.ones([self.size], tf.bool)
        for layer in self._sparse:
            finite = tf.logical_and(finite, layer.finite())
        for key, weight in zip(self.keys, self.weights):
            if key in self._sparse_keys:
                continue  # its kernel is not trained; its survivors are checked above
            flat = tf.reshape(weight, [self.size, -1])
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(flat), axis=1))
        return finite

    # Python side.

    @property
    def sparse_layers(self) -> Tuple[str, ...]:
        """The layers trained as one vector of all members' survivors."""
        return tuple(layer.name for layer in self._sparse)

    @property
    def sparse_sizes(self) -> Dict[str, int]:
        """Each sparse layer's compiled size (all members' survivors, padded)."""
        return {layer.name: layer.size for layer in self._sparse}

    def sync(self) -> None:
        """Writes the sparse layers' survivors into the stacked kernels (before
        anything reads them: weights, finish, a dense evaluation)."""
        if self._dirty:
            for layer in self._sparse:
                layer.store(self.weights[self.keys.index(layer.name)])
            self._dirty = False

    def load(self, models: Sequence[ModelBase], optimizer: Any,
             stacked: Optional[Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]] = None
             ) -> None:
        """Loads the members' weights, masks and dropout seeds, and `optimizer`'s
        fresh state (a reused engine's optimizer may hold another run's).

        Args:
          models: the members.
          optimizer: the population's fresh optimizer.
          stacked: stacked_weights(models, keys) if already read.
        """
        weights, masks = stacked if stacked is not None else stacked_weights(models, self.keys)
        for key, variable in zip(self.keys, self.weights):
            variable.assign(weights[key])
        for key, variable in zip(self.keys, self.masks):
            variable.assign(masks[key])
        for name, variable in zip(self.dropout_layers, self.seeds):
            variable.assign(np.array([m.dropout_seeds[name] for m in models], np.int64))
        for layer in self._sparse:
            layer.load(weights[layer.name], masks[layer.name])
        self._dirty = False
        if optimizer is not self.optimizer:
            optimizer.build(self.trainables)
            cache_lib.assign_all(optimizer.variables, self.optimizer.variables)

    def train_steps(self, indices: np.ndarray, first_step: int) -> Tuple[np.ndarray, np.ndarray]:
        """One step per row of `indices` ([steps, K, batch]); per-member mean
        (loss, accuracy) over them, float64 [K] each."""
        traces = self._train_steps.experimental_get_tracing_count()
        started = time.perf_counter()
        # Before the call: if it is interrupted, the survivors it trained still
        # reach the kernels (finish syncs).
        self._dirty = bool(self._sparse)
        loss, accuracy = self._train_steps(self._x_train, self._y_train, indices,
                                           tf.constant(first_step, tf.int64))
        loss, accuracy = loss.numpy().astype(np.float64), accuracy.numpy().astype(np.float64)
        self.timer.add("train_steps", self._train_steps.experimental_get_tracing_count() != traces,
                       time.perf_counter() - started, int(indices.shape[0]))
        return loss, accuracy

    def begin(self) -> None:
        """Starts timing a new population's calls (see compile_seconds)."""
        self.timer.reset()

    def compile_seconds(self) -> float:
        """Time spent tracing the training loop since begin(), as a single run
        estimates it: calls that traced, less what their steps took elsewhere."""
        return self.timer.compile_seconds()

    def evaluate(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """Per-member (loss, accuracy) over a whole split, float64 [K] each."""
        x, y = self._splits[split]
        count = int(y.shape[0])
        function = self._evaluations[split]
        traces = function.experimental_get_tracing_count()
        started = time.perf_counter()
        if self.sparse_evaluation:
            # Read from the survivor vectors: no sync().
            arguments = self._chunked[split]
        else:
            self.sync()
            arguments = (x, y)
        loss_sum, correct = (value.numpy() for value in function(*arguments))
        # Timed for done.json's evaluation_seconds; a call that traced counts
        # as compiling beyond the time of the calls that did not.
        self.timer.add(f"evaluate:{split}",
                       function.experimental_get_tracing_count() != traces,
                       time.perf_counter() - started, 1)
        return loss_sum / count, correct / count

    def evaluation_chunk(self) -> int:
        """Examples per evaluation chunk: the template's, fewer for a big population."""
        chunk = max(1, int(self.template.evaluation_chunk))
        return max(1, min(chunk, chunk * EVALUATION_BUDGET // self.size))

    def tracing_counts(self) -> Dict[str, int]:
        """How many times each split's evaluation function has been traced."""
        return {f"evaluate_{split}": function.experimental_get_tracing_count()
                for split, function in self._evaluations.items()}

    def training_tracing_count(self) -> int:
        """How many times the training loop has been traced."""
        return self._train_steps.experimental_get_tracing_count()

    def finite(self) -> np.ndarray:
        """Per member, whether all its weights are finite."""
        return self._finite().numpy()

    def effective(self) -> Dict[str, np.ndarray]:
        """key -> effective values [K, ...] (kernels and biases)."""
        self.sync()
        return {key: value.numpy() for key, value in zip(self.keys, self._effective())}

    def raw(self) -> Dict[str, np.ndarray]:
        """key -> the stacked variables' values [K, ...] (masks not applied)."""
        self.sync()
        return {key: variable.numpy() for key, variable in zip(self.keys, self.weights)}

    def steady_timing(self) -> Tuple[float, int]:
        """(seconds, steps) of this population's training calls that did not trace."""
        return self.timer.steady("train_steps")

    # The Engine interface beyond train_steps, evaluate and finite.

    def member_weights(self) -> List[Network]:
        effective = self.effective()
        return [{key: values[k] for key, values in effective.items()}
                for k in range(self.size)]

    def finish(self, models: Sequence[ModelBase], iteration: int) -> None:
        """Copies the trained values into the members' models (as a single run
        leaves its model trained), sets their dropout counters to `iteration`
        and releases the engine."""
        try:
            raw = self.raw()
            for k, model in enumerate(models):
                kernels, biases = model.kernel_variables, model.bias_variables
                for key, values in raw.items():
                    if key in kernels:
                        kernels[key].assign(values[k])
                    else:
                        biases[key[:-len(BIAS_SUFFIX)]].assign(values[k])
                model.set_training_step(iteration)
        finally:
            self.in_use = False

    def xla_record(self) -> Dict[str, Any]:
        return {"setting": self.xla_setting, "training": self.jit_compile,
                "evaluation": self.sparse_evaluation, "sparse_layers": list(self.sparse_layers)}

    def speed_record(self) -> Dict[str, Any]:
        return self.timer.speed_record()


def stacked_weights(models: Sequence[ModelBase], keys: Sequence[str]
                    ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """The members' effective weights and their masks, stacked: key -> [K, ...].

    Each member's slice is what its ``get_current_weights(include_biases=True)``
    gives, bit for bit, and its mask (ones where it has none). For models
    whose weights are their declared variables the values are read from the
    variables and the masks applied in one TensorFlow multiply per weight
    over all members (the same elementwise product each member's own
    get_current_weights takes, so the same bits, flushed denormals included),
    instead of K reads of each model's weights.

    Args:
      models: the built members (one layout: members.check_models).
      keys: the weight keys (kernels by layer name, biases by bias_key).

    Returns:
      (weights, masks): key -> the members' values stacked on axis 0.
    """
    if not all(reads_own_variables(m) for m in models):
        values = [m.get_current_weights(include_biases=True) for m in models]
        masks = [_masks_of(m) for m in models]
        return ({key: np.stack([v[key] for v in values]) for key in keys},
                {key: np.stack([m[key] for m in masks]) for key in keys})
    # key -> per member (value variable, mask variable or None)
    pairs: Dict[str, List[Tuple[tf.Variable, Optional[tf.Variable]]]] = {k: [] for k in keys}
    for model in models:
        masks_of = model.mask_variables
        for name, kernel in model.kernel_variables.items():
            pairs[name].append((kernel, masks_of.get(name)))
        masks_of = model.bias_mask_variables
        for name, bias in model.bias_variables.items():
            pairs[bias_key(name)].append((bias, masks_of.get(name)))
    weights, masks = {}, {}
    for key in keys:
        raw = np.stack([value.numpy() for value, _ in pairs[key]])
        masked = np.array([mask is not None for _, mask in pairs[key]])
        mask = np.stack([np.ones(raw.shape[1:], np.float32) if m is None else m.numpy()
                         for _, m in pairs[key]])
        if masked.any():
            product = (tf.constant(raw) * tf.constant(mask)).numpy()
            # A member without a mask has its variable's own values (no multiply).
            raw = np.where(masked.reshape((-1,) + (1,) * (raw.ndim - 1)), product, raw)
        weights[key], masks[key] = raw, mask
    return weights, masks


def _masks_of(model: ModelBase) -> Dict[str, np.ndarray]:
    """Weight key -> the member's mask (ones where it has none), kernels and biases.

    Read once per member: each of the model's mask properties reads all its
    variables."""
    masks = dict(model.masks)
    bias_masks = model.bias_masks
    for name, bias in model.bias_variables.items():
        key = bias_key(name)
        masks[key] = bias_masks[key] if key in bias_masks else np.ones(bias.shape, np.float32)
    return masks




def population_xla(batched: bool) -> bool:
    """What jit_compile=None (--xla=auto) means for a population: XLA for the
    training loop or not.

    Off by default on both paths (see the module docstring, "XLA": on a CPU
    XLA's batched matmuls ran 5-11x slower); the environment variable
    LOTTERY_TICKET_XLA_AUTO=on|off makes 'auto' mean that instead, as it does
    for single runs. On a GPU it is off too: not measured there yet.

    Args:
      batched: whether the population runs batched (batched_reason is None).

    Raises:
      ValueError: LOTTERY_TICKET_XLA_AUTO holds something else than auto, on or off.
    """
    forced = os.environ.get(XLA_AUTO_VARIABLE, "auto")
    if forced not in ("auto", "on", "off"):
        raise ValueError(f"{XLA_AUTO_VARIABLE} is {forced!r}; it must be auto, on or off "
                         "(what --xla=auto means in this environment).")
    if forced != "auto":
        return forced == "on"
    return BATCHED_JIT if batched else False


def stacked_engine(dataset: DatasetBase, models: Sequence[ModelBase], optimizer: Any,
                   jit_compile: Optional[bool], iterations: Optional[int] = None,
                   sparse_below: Optional[float] = None) -> StackedEngine:
    """A loaded engine for `models`: one traced before for the same data set,
    architecture, size, optimizer setting and sparse layers (whose compiled
    sizes fit these members' survivors: sparse.sparse_fits), or a new one
    (claimed: in_use).

    Args:
      dataset: the members' data (their arrays; the order is the loop's).
      models: the built members (checked by members.check_models).
      optimizer: the population's fresh optimizer (members.check_optimizer).
      jit_compile: compile the training loop with XLA; None chooses per path
        (population_xla), and XLA where layers train sparsely.
      iterations: the population's length, if known: a reused sparse engine's
        padding is then weighed against a compile (sparse.sparse_fits).
      sparse_below: the fraction of its weights below which every member must
        keep a dense layer for it to train as one survivor vector (0: never;
        None: SPARSE_BELOW).

    Returns:
      The engine, loaded with the members' values and `optimizer`'s state.
    """
    template = models[0]
    batched = batched_reason(template, dataset.example_shape) is None
    setting = "auto" if jit_compile is None else ("on" if jit_compile else "off")
    layout: Tuple[Tuple[str, int], ...] = ()
    keys = [key for key, _ in weight_layout(template)
            if key not in {dropout_seed_key(name) for name in template.dropout_seeds}]
    stacked = stacked_weights(models, keys)
    # Checks LOTTERY_TICKET_XLA_AUTO (a bad value is refused whatever the masks).
    auto = population_xla(batched) if jit_compile is None else None
    # Sparse layers only under XLA: 'off', or 'auto' that the environment turns off,
    # keeps the dense batched path.
    sparse_below = SPARSE_BELOW if sparse_below is None else sparse_below
    if sparse_below > 0 and batched and (jit_compile or (jit_compile is None
                                    and os.environ.get(XLA_AUTO_VARIABLE, "auto") != "off")):
        layout = stacked_sparse_layout(stacked[1], template.layer_names, sparse_below)
    if layout:
        jit_compile = True
    elif jit_compile is None:
        jit_compile = auto
    evaluates = sparse_evaluates(
        layout, {name: int(np.prod(stacked[1][name].shape)) for name, _ in layout},
        SPARSE_EVALUATION_BELOW)
    # The layout of the weights, not of the model's variables: members with and
    # without masks (mask variables) share an engine, whose masks are stacked.
    key = cache_lib.engine_key(template, optimizer, tuple(weight_layout(template)),
                               len(models), bool(jit_compile), batched,
                               tuple(name for name, _ in layout), SPARSE_CHUNK)
    engine, _ = ENGINES.claim(
        dataset, key,
        # A private template, so that later populations never touch a caller's model.
        make=lambda: StackedEngine(copy.deepcopy(template), len(models), dataset,
                                   optimizer, jit_compile, batched,
                                   sparse_sizes={name: bucket(kept) for name, kept in layout},
                                   sparse_evaluation=evaluates),
        # Sparse vectors big enough, and not wastefully so, for these survivors (a
        # later lottery level reuses an earlier level's engine); the smallest first.
        fits=lambda engine: (sparse_fits(engine.sparse_sizes, layout, iterations)
                             and engine.sparse_evaluation == evaluates),
        cost=lambda engine: sum(engine.sparse_sizes.values()),
        variant=lambda engine: tuple(sorted(engine.sparse_sizes.items())))
    try:
        engine.load(models, optimizer, stacked)
        engine.xla_setting = setting
        engine.begin()
    except BaseException:
        engine.in_use = False
        raise
    return engine
