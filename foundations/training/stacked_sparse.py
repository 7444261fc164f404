"""A population's very sparse dense layers as one vector of all members' survivors.

The K members' kernels of one dense layer ([K, in, out]) are the diagonal
blocks of one "super layer" of K*in inputs and K*out units: member k's
surviving weight (r, c) is row k*in + r of the member-major transposed
inputs ([K*in, batch]) and unit k*out + c of the outputs. The layer then
trains as `sparse.SparseLayer` trains a single run's: gather the survivors'
input rows, multiply by their values, segment-sum into the units. All
members' survivors are concatenated (members may keep different counts) and
padded to a compiled size with entries that point at member 0's (0, 0) and
count as exactly 0 (survivors()), so they change neither an output nor a
gradient.

`stacked.StackedEngine` uses these layers on its batched path under XLA;
see that module's docstring ("Sparse layers").
"""

from typing import Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf


def stacked_sparse_layout(masks: Mapping[str, np.ndarray], layer_names: Sequence[str],
                          below: float) -> Tuple[Tuple[str, int], ...]:
    """The layers a population trains sparsely, with all members' survivor counts.

    Those are the dense layers where every member's mask keeps fewer than
    `below` of its weights.

    Args:
      masks: weight key -> the members' masks stacked on axis 0 ([K, in, out]
        for a dense kernel; ones where a member has no mask).
      layer_names: the model's layers, in order.
      below: the fraction of surviving weights below which a layer is sparse
        (0: none is).

    Returns:
      ((layer, all members' survivors), ...): the sparse layers in layer order.
    """
    layout = []
    for name in layer_names:
        mask = masks.get(name)
        if mask is None or mask.ndim != 3 or below <= 0:
            continue  # a convolution (or no kernel)
        per_member = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
        if (per_member < below * int(np.prod(mask.shape[1:]))).all():
            layout.append((name, int(per_member.sum())))
    return tuple(layout)


class StackedSparseLayer:
    """All members' survivors of one dense layer as a vector (see the module docstring).

    Args:
      name: the layer.
      members: K.
      inputs: the layer's inputs per member (the kernel's rows).
      units: the layer's units per member (the kernel's columns).
      size: the compiled length of the vector (at least the survivors).
    """

    def __init__(self, name: str, members: int, inputs: int, units: int, size: int):
        self.name, self.members, self.inputs, self.units, self.size = (
            name, members, inputs, units, size)
        self.values = tf.Variable(tf.zeros([size]), name=f"population_{name}_sparse_values")
        # Row of the member-major transposed inputs ([K*in, batch]) and unit of the
        # member-major outputs ([K*out, batch]) of each survivor.
        self.rows = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        self.columns = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        # The survivor's member, and its row within the member's own inputs.
        self.member = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        self.member_rows = tf.Variable(tf.zeros([size], tf.int32), trainable=False)
        self.valid = tf.Variable(tf.zeros([size]), trainable=False)

    def load(self, kernels: np.ndarray, masks: np.ndarray) -> None:
        """Takes the survivors and their values (at the start of a population).

        Args:
          kernels: the members' (effective) kernels, stacked: [K, in, out].
          masks: the members' masks, stacked: [K, in, out].

        Raises:
          RuntimeError: the masks keep more weights than the vector holds.
        """
        member, row, column = np.nonzero(masks)
        count = len(member)
        if count > self.size:
            raise RuntimeError(f"layer {self.name} has {count} survivors for a sparse "
                               f"vector of {self.size}; this is a bug in the engine's choice.")
        pad = self.size - count

        def padded(values: np.ndarray, dtype: type) -> np.ndarray:
            return np.concatenate([values, np.zeros(pad, values.dtype)]).astype(dtype)

        valid = np.concatenate([np.ones(count, np.float32), np.zeros(pad, np.float32)])
        member, row, column = (padded(a, np.int32) for a in (member, row, column))
        self.member.assign(member)
        self.member_rows.assign(row)
        self.rows.assign(member * self.inputs + row)
        self.columns.assign(member * self.units + column)
        self.valid.assign(valid)
        self.values.assign(np.where(valid > 0, kernels[member, row, column], 0.0)
                           .astype(np.float32))

    def _sum(self, gathered: tf.Tensor) -> tf.Tensor:
        """[survivors, batch] products -> [K, batch, out] per member's units."""
        summed = tf.math.unsorted_segment_sum(gathered, self.columns,
                                              self.members * self.units)
        return tf.transpose(tf.reshape(summed, [self.members, self.units, -1]), [0, 2, 1])

    def product(self, inputs: tf.Tensor) -> tf.Tensor:
        """Each member's rows times its own kernel, from the survivors only.

        Args:
          inputs: member-major rows [K*batch, in].

        Returns:
          [K, batch, out]: member k's rows times member k's kernel (equal to
          the dense product up to float rounding: a unit's sum runs in
          another order).
        """
        rows = tf.reshape(inputs, [self.members, -1, self.inputs])
        transposed = tf.reshape(tf.transpose(rows, [0, 2, 1]), [self.members * self.inputs, -1])
        weights = self.survivors()
        return self._sum(tf.gather(transposed, self.rows) * weights[:, None])

    def shared_product(self, transposed: tf.Tensor) -> tf.Tensor:
        """product() of rows every member shares, given them transposed.

        Args:
          transposed: [in, batch]: the shared rows, transposed (member k's
            block of product's inputs is all of them).

        Returns:
          [K, batch, out], as product() of the rows tiled K times.
        """
        weights = self.survivors()
        return self._sum(tf.gather(transposed, self.member_rows) * weights[:, None])

    def finite(self) -> tf.Tensor:
        """Per member, whether all its survivors' values are finite: bool [K]."""
        bad = tf.cast(tf.logical_not(tf.math.is_finite(self.values)), tf.int32)
        # A member without survivors gets the lowest int32 (no value is bad).
        return tf.math.unsorted_segment_max(bad, self.member, self.members) <= 0

    def survivors(self) -> tf.Tensor:
        """The values, with every padding entry exactly 0.

        Selected, not multiplied by 0, so that a padding entry never carries a
        NaN into a product or into the kernel it is written back to; its
        gradient is 0 as well.
        """
        return tf.where(self.valid > 0, self.values, tf.zeros_like(self.values))

    def store(self, kernel: tf.Variable) -> None:
        """Writes the survivors' values into the members' stacked kernel.

        Every other weight becomes exactly 0.

        Args:
          kernel: the layer's stacked kernel variable, [K, in, out].
        """
        indices = tf.stack([self.member, self.member_rows,
                            self.columns - self.member * self.units], axis=1)
        kernel.assign(tf.scatter_nd(indices, self.survivors(), kernel.shape))
