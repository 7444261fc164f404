"""Very sparse dense layers trained as vectors of their surviving weights."""

import math
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations.model_base import ModelBase

# Below this fraction of surviving weights a dense layer trains as a sparse vector
# (gather, multiply, segment-sum) when the training loop is compiled with XLA:
# bench/bench_trial.py puts the crossover with the dense masked kernel at about
# 5-6% on a 2-core CPU.
SPARSE_BELOW = 0.05

# A compiled sparse layer of at most this many times a run's survivors may serve
# it (padding entries count as exactly 0, so the numbers do not change): the
# levels of a short trial (20% fewer survivors each) then compile about every
# sixth level, not every level.
SPARSE_SLACK = 4.0

# But padding costs work on every iteration, and a long run pays for it many
# times over: a run that knows its length reuses a program with more padding
# than a fresh compile would have (bucket(kept)) only while the padding's cost
# over the run stays below the compile it saves. On the 2-core CPU
# (bench/bench_trial.py, one thread) a LeNet survivor cost about 0.06 us a
# training step plus 0.02 us of evaluation per iteration (15,000 examples every
# 100), and a new sparse program took 1.0-1.4 s to compile. At 50,000
# iterations a level that reuses a program four times its size paid about
# 0.5 ms an iteration, 25 s, for a 1 s compile saved.
SPARSE_SECONDS_PER_PADDING_ITERATION = 8e-8
SPARSE_COMPILE_SECONDS = 1.0

# Examples per chunk when a run with sparse layers evaluates through their survivors
# (XLA-compiled, activations transposed): small enough that the gathered
# [survivors, chunk] block stays in cache. bench/bench_trial.py's levels section
# measures the result against the dense evaluation.
SPARSE_EVALUATION_CHUNK = 200

# A run's sparse layers evaluate through their survivors when their compiled sizes
# are below this fraction of their kernels' weights. On the 2-core CPU, one
# 10,000-example test evaluation of LeNet-300-100 at 5% took 22 ms through the
# survivors on one thread (20 ms with two) against 55 ms for the dense product on
# one thread and 29 ms on two: there it wins at every density that trains
# sparsely by default, at one thread or two (bench/bench_trial.py's levels
# section measures whole levels). On a GPU or a many-core CPU the dense product
# may win sooner; these constants are that CPU's.
SPARSE_EVALUATION_BELOW = 0.05


def bucket(count: int) -> int:
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
    masks = model.mask_variables
    for name in model.layer_names:
        mask = masks.get(name)
        if mask is None or mask.shape.rank != 2 or below <= 0:
            continue  # unmasked, or a convolution
        kept = int(np.count_nonzero(mask.numpy()))
        if kept < below * int(np.prod(mask.shape)):
            layout.append((name, kept))
    return tuple(layout)


def sparse_fits(sizes: Mapping[str, int], layout: Sequence[Tuple[str, int]],
                iterations: Optional[int] = None) -> bool:
    """Whether compiled sparse layers of `sizes` serve a run of `layout`: the same
    layers, each big enough and not wastefully so.

    Args:
      sizes: layer -> compiled size of its survivor vector.
      layout: ((layer, survivors), ...) of the run (sparse_layout).
      iterations: the run's length, if known: then a program padded beyond what
        a fresh compile would make (bucket) serves it only while that extra
        padding's work over the run costs less than compiling
        (SPARSE_SECONDS_PER_PADDING_ITERATION, SPARSE_COMPILE_SECONDS).

    Returns:
      True when an engine compiled with `sizes` may train the run.
    """
    if set(sizes) != {name for name, _ in layout}:
        return False
    if not all(kept <= sizes[name] <= max(SPARSE_SLACK * kept, 16) for name, kept in layout):
        return False
    if iterations is None or all(sizes[name] <= bucket(kept) for name, kept in layout):
        return True
    # Beyond the padding a program compiled for this run would have anyway.
    extra = sum(max(sizes[name] - bucket(kept), 0) for name, kept in layout)
    return extra * iterations * SPARSE_SECONDS_PER_PADDING_ITERATION <= SPARSE_COMPILE_SECONDS


def sparse_evaluates(layout: Sequence[Tuple[str, int]], weights: Mapping[str, int],
                     below: Optional[float] = None) -> bool:
    """Whether a run of `layout` evaluates through its survivors.

    Decided by the run's own survivors, not by the compiled sizes of the engine
    it trains with, so that a level's numbers do not depend on which earlier
    level compiled that engine.

    Args:
      layout: ((layer, survivors), ...) of the run's sparse layers.
      weights: layer -> its kernel's size (a population's: all members').
      below: the fraction of those weights the bucketed survivors must stay
        under; default SPARSE_EVALUATION_BELOW (populations pass their own).

    Returns:
      True when the run evaluates through its survivors.
    """
    if not layout:
        return False
    below = SPARSE_EVALUATION_BELOW if below is None else below
    compiled = sum(bucket(kept) for _, kept in layout)
    return compiled < below * sum(weights[name] for name, _ in layout)


class SparseLayer:
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
        """Takes the survivors' values from the kernel (at the start of a run).

        Raises:
          RuntimeError: the mask keeps more weights than the layout holds.
        """
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
        self.values.assign(np.where(valid > 0, self.kernel.numpy()[rows, columns], 0.0)
                           .astype(np.float32))

    def survivors(self) -> tf.Tensor:
        """The values, with every padding entry exactly 0.

        Selected, not multiplied by 0, so that a padding entry never carries a
        NaN into a product or into the kernel it is written back to; its
        gradient is 0 as well.
        """
        return tf.where(self.valid > 0, self.values, tf.zeros_like(self.values))

    def matmul(self, inputs: tf.Tensor) -> tf.Tensor:
        """inputs @ kernel, computed from the survivors only (training steps and,
        in chunks of SPARSE_EVALUATION_CHUNK examples, evaluation).

        The activations are transposed so that each survivor gathers a
        contiguous row of examples: the work is survivors x examples, not the
        kernel's size x examples. Equal to the dense product up to float
        rounding (the sum over a unit's survivors runs in another order).
        """
        return self.transposed_matmul(tf.transpose(inputs))

    def transposed_matmul(self, transposed_inputs: tf.Tensor) -> tf.Tensor:
        """matmul(inputs) given inputs transposed ([features, examples])."""
        weights = self.survivors()
        gathered = tf.gather(transposed_inputs, self.rows) * weights[:, None]
        return tf.transpose(tf.math.unsorted_segment_sum(gathered, self.columns, self.units))

    def store(self) -> None:
        """Writes the survivors' values back into the (masked) kernel."""
        indices = tf.stack([self.rows, self.columns], axis=1)
        self.kernel.assign(tf.scatter_nd(indices, self.survivors(),
                                         self.kernel.shape))
