"""Compiled engines kept per data set and reused by later runs of the same computation.

An engine's compiled functions capture its variables, not their values, so a
later run whose computation is the same (same model class and trace key,
variable layout, optimizer setting, compilation setting) loads its values into
those variables and trains without tracing again. What "the same" means is the
`engine_key`; a model opts in through `ModelBase.trace_key`.
"""

import collections
import json
import threading
import weakref
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase

# What the traced computation calls on the model, besides its variables.
TRACED = ("__init__", "forward", "loss", "accuracy", "__call__")

Engine = TypeVar("Engine")


def defined_in(cls: type, name: str) -> type:
    """The class of `cls`'s method resolution order that defines `name`."""
    return next(klass for klass in cls.__mro__ if name in vars(klass))


def traced_functions(model: ModelBase) -> Tuple[Callable, ...]:
    """The functions a trace of `model` calls (one patched on the class after a
    trace is another computation)."""
    return tuple(getattr(defined_in(type(model), name), name) for name in TRACED)


def trusted_trace_key(model: ModelBase) -> Optional[Hashable]:
    """model.trace_key(), where it speaks for the model's whole computation, else None.

    A subclass that changes the constructor, forward, loss or accuracy without
    declaring its own trace_key (a ModelFc subclass with an extra argument,
    say) inherits a key that cannot know about its change, and an instance
    with its own loss or forward differs from its class: neither is shared.
    """
    cls = type(model)
    if any(name in vars(model) for name in TRACED):
        return None
    owner = defined_in(cls, "trace_key")
    if not all(issubclass(owner, defined_in(cls, name)) for name in TRACED):
        return None
    return model.trace_key()


def optimizer_key(optimizer: Any) -> Optional[Hashable]:
    """The optimizer's class and configuration (not its name), or None if unknowable."""
    try:
        config = dict(optimizer.get_config())
    except (AttributeError, NotImplementedError, TypeError):
        return None
    config.pop("name", None)  # Names differ between equal optimizers.
    return (type(optimizer).__module__, type(optimizer).__qualname__,
            json.dumps(config, sort_keys=True, default=repr))


def engine_key(model: ModelBase, optimizer: Any, layout: Hashable,
               *extra: Hashable) -> Optional[Hashable]:
    """What two runs must share to share an engine, or None (never shared).

    Args:
      model: the (built) model.
      optimizer: the run's fresh optimizer.
      layout: the shapes of what the engine holds of the model.
      *extra: the engine's own settings (compilation, sparse layout, size...).
    """
    model_key = trusted_trace_key(model)
    opt_key = optimizer_key(optimizer)
    if model_key is None or opt_key is None:
        return None
    return (type(model), model_key, layout, opt_key, traced_functions(model)) + tuple(extra)


def variable_layout(model: ModelBase) -> Tuple:
    """Names, shapes, types and trainability of all the model's variables."""
    return tuple((v.name, tuple(v.shape), v.dtype.name, v.trainable) for v in model.variables)


def assign_all(source: Sequence[tf.Variable], target: Sequence[tf.Variable]) -> None:
    """Assigns each source variable's value to the target at the same position.

    Raises:
      RuntimeError: the two do not have the same shapes, position by position.
    """
    if len(source) != len(target) or any(
            tuple(a.shape) != tuple(b.shape) for a, b in zip(source, target)):
        raise RuntimeError("compiled functions were reused for a different variable "
                           "layout; this is a bug in training.cache.engine_key.")
    for value, variable in zip(source, target):
        variable.assign(value)


# One copy of each data set's arrays on the device, shared by every run that trains
# on it: each level of a trial used to copy the training set again, and the copies
# stayed alive with the compiled functions that captured them (about 200 MB a level).
_DEVICE_DATA: "weakref.WeakKeyDictionary[DatasetBase, tuple]" = weakref.WeakKeyDictionary()


def device_data(dataset: DatasetBase) -> tuple:
    """(x_train, y_train, {split: (x, y)}) as tensors, made once per data set."""
    if dataset not in _DEVICE_DATA:
        splits = {name: (tf.constant(x), tf.constant(y))
                  for name, (x, y) in dataset.splits.items() if name != "train"}
        _DEVICE_DATA[dataset] = (tf.constant(dataset.train[0]),
                                 tf.constant(dataset.train[1]), splits)
    return _DEVICE_DATA[dataset]


class EngineCache:
    """Engines by data set, then by (engine key, variant); least recently used
    dropped first beyond `per_dataset`.

    An engine has an ``in_use`` attribute: a run claims an engine (sets it) and
    releases it when done, so two runs (threads, or a run started from another
    run's progress callback) never train with one engine.
    """

    def __init__(self, per_dataset: int):
        self.per_dataset = per_dataset
        self._engines: "weakref.WeakKeyDictionary[DatasetBase, collections.OrderedDict]" = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def engines(self, dataset: DatasetBase) -> List[Any]:
        """The engines kept for `dataset`, least recently used first."""
        with self._lock:
            return list(self._engines.get(dataset, {}).values())

    def claim(self, dataset: DatasetBase, key: Optional[Hashable], make: Callable[[], Engine],
              fits: Callable[[Engine], bool] = lambda engine: True,
              cost: Callable[[Engine], float] = lambda engine: 0,
              variant: Callable[[Engine], Hashable] = lambda engine: ()
              ) -> Tuple[Engine, bool]:
        """A free kept engine for `key` that `fits` (the lowest `cost`), or a new one.

        A new engine is kept under (key, variant(engine)), unless key is None or
        a fitting engine exists but is in use (then the new one is this run's
        alone).

        Returns:
          (engine, whether it is new), the engine claimed (in_use set).
        """
        if key is None:
            engine = make()
            engine.in_use = True
            return engine, True
        with self._lock:  # claimed in one step, so two threads never claim one engine
            engines = self._engines.setdefault(dataset, collections.OrderedDict())
            fitting = sorted((cost(engine), index, cached)
                             for index, (cached, engine) in enumerate(engines.items())
                             if cached[0] == key and fits(engine))
            free = [cached for _, _, cached in fitting if not engines[cached].in_use]
            if free:
                engine = engines[free[0]]
                engines.move_to_end(free[0])
                engine.in_use = True
                return engine, False
            engine = make()
            engine.in_use = True
            if not fitting:
                engines[(key, variant(engine))] = engine
                while len(engines) > self.per_dataset:
                    engines.popitem(last=False)
            return engine, True


# Per data set: (split, chunk) -> its examples and labels laid out in chunks.
_CHUNKED_LOCK = threading.Lock()
_CHUNKED: "weakref.WeakKeyDictionary[DatasetBase, Dict[Tuple[str, int], tuple]]" = (
    weakref.WeakKeyDictionary())


def chunked_split(dataset: DatasetBase, split: str, chunk: int) -> Tuple[tf.Tensor, ...]:
    """A split laid out for a sparse evaluation, made once per data set and chunk.

    The chunks are on a leading axis, so that a compiled loop indexes that
    axis: under XLA a slice with a dynamic start along a minor axis of a big
    tensor made XLA pad the whole tensor to twice its size in each dimension
    on every call (about 125 MB for Fashion-MNIST's test set), which cost more
    than the sparse evaluation itself. Single runs (single.transposed_chunks)
    and populations (stacked) share it.

    Args:
      dataset: the data set.
      split: a non-training split of it.
      chunk: examples per chunk.

    Returns:
      (x_chunks [chunks, chunk, ...], transposed [chunks, features, chunk],
      y_chunks [chunks, chunk, ...], x_tail, transposed_tail, y_tail): the
      whole chunks, each chunk's examples flattened and transposed, its
      labels, and the same of the examples left over (possibly none).
    """
    with _CHUNKED_LOCK:
        return _chunked_split(dataset, split, chunk)


def _chunked_split(dataset: DatasetBase, split: str, chunk: int) -> Tuple[tf.Tensor, ...]:
    cached = _CHUNKED.setdefault(dataset, {})
    x, y = dataset.splits[split]
    count = len(y)
    chunk = max(1, min(chunk, count))
    if (split, chunk) not in cached:
        x, y = np.asarray(x, np.float32), np.asarray(y)
        full = count // chunk * chunk
        flat = x.reshape(count, -1)

        def transposed(rows_flat: np.ndarray, chunks: int) -> np.ndarray:
            return np.ascontiguousarray(
                rows_flat.reshape(chunks, -1, rows_flat.shape[-1]).transpose(0, 2, 1))

        chunks = full // chunk
        tail = count - full
        arrays = (x[:full].reshape((chunks, chunk) + x.shape[1:]),
                  transposed(flat[:full], chunks),
                  y[:full].reshape((chunks, chunk) + y.shape[1:]),
                  x[full:],
                  flat[full:].T.copy() if tail else np.zeros((flat.shape[1], 0), np.float32),
                  y[full:])
        cached[(split, chunk)] = tuple(tf.constant(a) for a in arrays)
    return cached[(split, chunk)]
