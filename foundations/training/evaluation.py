"""A model's loss and accuracy on a split, without an optimizer or training functions."""

import copy
import functools
import threading
import weakref
from typing import Any, Dict, Hashable, Tuple

import tensorflow as tf

from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training.single import chunked_evaluation
from lottery_ticket.foundations.training.xla import resolve_xla


class Evaluator:
    """One compiled evaluation of a model structure on one split of a data set.

    Holds its own copy of the model (for a model with a trace key) into which
    each call loads the caller's values, so later models of the same structure
    reuse the traced function.

    Args:
      model: the model whose structure is compiled.
      x: the split's examples.
      y: the split's labels.
      jit: compile with XLA.
    """

    def __init__(self, model: ModelBase, x: tf.Tensor, y: tf.Tensor, jit: bool):
        self.model = model
        self.lock = threading.Lock()
        self._x, self._y = x, y
        self.function = tf.function(functools.partial(self._graph), jit_compile=jit)

    def _graph(self) -> Tuple[tf.Tensor, tf.Tensor]:
        return chunked_evaluation(self.model, self._x, self._y)

    def tracing_count(self) -> int:
        """How often the function has been traced (1 once used)."""
        return self.function.experimental_get_tracing_count()

    def __call__(self, model: ModelBase) -> Tuple[float, float]:
        with self.lock:
            if model is not self.model:
                cache_lib.assign_all(model.variables, self.model.variables)
            loss, accuracy = self.function()
            return float(loss), float(accuracy)


_EVALUATORS: "weakref.WeakKeyDictionary[DatasetBase, Dict[Hashable, Evaluator]]" = (
    weakref.WeakKeyDictionary())
_LOCK = threading.Lock()


def evaluator(model: ModelBase, dataset: DatasetBase, split: str,
              xla: Any = "auto") -> Evaluator:
    """The compiled evaluation `evaluate` uses for `model` on `split`.

    One made before for the same model structure, data set, split and setting, or a new one.

    Args:
      model: the model to evaluate.
      dataset: the data set holding `split`.
      split: 'train', 'validation' or 'test'.
      xla: 'auto', 'on' or 'off' (see training.xla).

    Raises:
      ValueError: the data set has no such split.
    """
    if split not in dataset.splits or dataset.splits[split] is None:
        raise ValueError(f"the dataset has no {split!r} split; its splits are "
                         f"{sorted(dataset.splits)}.")
    model.build(dataset.example_shape)
    jit = resolve_xla(xla, model)[1]
    x_train, y_train, splits = cache_lib.device_data(dataset)
    x, y = (x_train, y_train) if split == "train" else splits[split]
    trace_key = cache_lib.trusted_trace_key(model)
    if trace_key is None:
        return Evaluator(model, x, y, jit)
    key = (type(model), trace_key, cache_lib.variable_layout(model),
           cache_lib.traced_functions(model), split, jit)
    with _LOCK:
        evaluators = _EVALUATORS.setdefault(dataset, {})
        if key not in evaluators:
            # A private copy, so that no later call changes a model the caller holds.
            evaluators[key] = Evaluator(copy.deepcopy(model), x, y, jit)
        return evaluators[key]


def evaluate(model: ModelBase, dataset: DatasetBase, split: str = "test",
             xla: Any = "auto") -> Tuple[float, float]:
    """(loss, accuracy) of `model` over a whole split of `dataset`.

    Computed as the trainer evaluates during training (the same function, in
    chunks of model.evaluation_chunk examples), so a trained model gives the
    final metrics its run recorded (to float rounding where the run had sparse
    layers, which it evaluated through their survivors). Compiled once per model structure (class,
    trace key, variable shapes), data set, split and XLA setting in a process;
    no optimizer is made. The model is not changed.

    Args:
      model: a ModelBase (built here if it has not been called yet).
      dataset: the data.
      split: 'test', 'validate' or 'train'.
      xla: 'auto', 'on' or 'off' for the evaluation (see trainer.resolve_xla).

    Returns:
      (mean loss, accuracy) as Python floats.

    Raises:
      ValueError: the data set has no such split, or a bad xla setting.
    """
    return evaluator(model, dataset, split, xla)(model)
