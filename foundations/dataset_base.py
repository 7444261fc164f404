"""DatasetBase: in-memory numpy splits and a seeded training-batch order.

Splits are (x, y) pairs: x float32, y int32 class ids or float32 targets. The
test and validation splits are optional.
"""

from typing import Dict, Optional, Tuple

import numpy as np

Split = Tuple[np.ndarray, np.ndarray]


def _check_split(name: str, split) -> Split:
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"the {name} split must be a pair (x, y) of numpy arrays.")
    x, y = np.asarray(split[0]), np.asarray(split[1])
    if len(x) != len(y):
        raise ValueError(
            f"the {name} split has {len(x)} examples but {len(y)} labels.")
    if len(x) == 0:
        raise ValueError(f"the {name} split is empty.")
    if y.dtype.kind in "biu":
        labels = y.astype(np.int32, copy=False)  # class ids (and 0/1 flags)
    elif y.dtype.kind == "f":
        labels = y.astype(np.float32, copy=False)  # targets of e.g. a sigmoid loss
    else:
        raise ValueError(
            f"the {name} split's labels have dtype {y.dtype}; give integer class ids "
            "or float targets (numbers), e.g. y.astype(np.int32).")
    return x.astype(np.float32, copy=False), labels


class DatasetBase:
    """Training and optional test and validation splits held as numpy arrays.

    Training batches follow a fixed order: each epoch is a fresh permutation
    of the training set drawn from ``train_order_seed`` and the epoch number,
    cut into ``len(train) // train_batch_size`` batches (the remainder of each
    epoch is left out, a different remainder every epoch). The same seed gives
    the same batches, and any stretch of iterations can be produced on its own.

    Args:
      train: (x, y) training examples. y holds integer class ids (stored as
        int32) for the default softmax loss, or float targets (float32) for
        a model whose loss takes them (ModelBase.loss); y may have more
        axes than one ([N, 1], [N, k]) if the loss expects them.
      train_batch_size: examples per training batch.
      test: (x, y) test examples, or None for a dataset without a test split
        (the trainer then needs test_interval=None; it never evaluates one).
      validate: optional (x, y) validation examples.
      train_order_seed: seeds the batch order; None draws one, kept in
        ``self.train_order_seed`` so a run can still be repeated.

    Raises:
      ValueError: a split whose examples or labels differ in shape or type from the training
        split's, or a batch size out of range.
    """

    def __init__(self, train: Split, train_batch_size: int, test: Optional[Split] = None,
                 validate: Optional[Split] = None, train_order_seed: Optional[int] = None):
        self.train = _check_split("train", train)
        self.test = None if test is None else _check_split("test", test)
        self.validate = None if validate is None else _check_split("validate", validate)
        for split_name, split in (("test", self.test), ("validate", self.validate)):
            if split is not None and (split[0].shape[1:] != self.train[0].shape[1:]
                                      or split[1].shape[1:] != self.train[1].shape[1:]
                                      or split[1].dtype != self.train[1].dtype):
                raise ValueError(
                    f"the {split_name} split's examples {split[0].shape[1:]} and labels "
                    f"{split[1].shape[1:]} {split[1].dtype} differ from the training "
                    f"split's {self.train[0].shape[1:]} and {self.train[1].shape[1:]} "
                    f"{self.train[1].dtype}: every split needs the same shapes and label "
                    "type.")
        if int(train_batch_size) < 1 or int(train_batch_size) > len(self.train[0]):
            raise ValueError(
                f"train_batch_size {train_batch_size} must be between 1 and the "
                f"number of training examples ({len(self.train[0])}).")
        self.train_batch_size = int(train_batch_size)
        if train_order_seed is None:
            train_order_seed = int(np.random.SeedSequence().generate_state(1)[0] & 0x7FFFFFFF)
        self.train_order_seed = int(train_order_seed)

    @property
    def splits(self) -> Dict[str, Split]:
        """The splits present: 'train' and, if present, 'test' and 'validate'."""
        splits = {"train": self.train}
        if self.test is not None:
            splits["test"] = self.test
        if self.validate is not None:
            splits["validate"] = self.validate
        return splits

    @property
    def example_shape(self) -> Tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.train[0].shape[1:])

    @property
    def iterations_per_epoch(self) -> int:
        """Training batches in one epoch."""
        return len(self.train[0]) // self.train_batch_size

    def _epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.train_order_seed, epoch])
        return rng.permutation(len(self.train[0])).astype(np.int32)

    def batch_indices(self, start_iteration: int, count: int) -> np.ndarray:
        """Indices into the training set of `count` batches from `start_iteration`.

        Args:
          start_iteration: the iteration of the first batch (0 for a run from the start).
          count: how many consecutive batches.

        Returns:
          int32 array [count, train_batch_size]; row i is the batch of
          iteration start_iteration + i.
        """
        per_epoch = self.iterations_per_epoch
        rows = []
        iteration = start_iteration
        end = start_iteration + count
        while iteration < end:
            epoch, offset = divmod(iteration, per_epoch)
            take = min(per_epoch - offset, end - iteration)
            order = self._epoch_order(epoch)[:per_epoch * self.train_batch_size]
            batches = order.reshape(per_epoch, self.train_batch_size)
            rows.append(batches[offset:offset + take])
            iteration += take
        if not rows:
            return np.zeros([0, self.train_batch_size], np.int32)
        return np.concatenate(rows)
