"""What a pruning rule may read: the masks, the weights of the level, and on request
the model, the training data and per-weight quantities of its gradients.

The experiment loop gives a ``Context`` to every pruning function that accepts a
``context`` keyword. The model and the data are providers, called only when a
score asks for them, so magnitude rules never build a model or read data.
TensorFlow is imported only by the functions that compute gradients.
"""

import dataclasses
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional,
                    Sequence, Tuple, Union)

import numpy as np

if TYPE_CHECKING:  # the types only; importing them would import TensorFlow
    from lottery_ticket.foundations.dataset_base import DatasetBase
    from lottery_ticket.foundations.model_base import ModelBase

Network = Dict[str, np.ndarray]
Batch = Tuple[np.ndarray, np.ndarray]
# quantity(kernels, gradients) -> layer -> per-weight values, for one batch; kernels are
# the kernel variables (unmasked values), gradients d(loss)/d(kernel) (0 where pruned).
Quantity = Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]]


def per_weight_quantity(model: "ModelBase", batches: Iterable[Batch],
                        quantity: Optional[Quantity] = None) -> Network:
    """The mean over `batches` of a per-weight quantity of the loss's gradients.

    Gradients are taken with tf.GradientTape of model.loss(model.forward(x,
    training=False), y) with respect to model.kernel_variables, so a pruned
    weight's gradient is exactly 0 (the forward pass multiplies by the mask).

    Args:
      model: the network (built on its first batch if it is not yet).
      batches: (inputs, labels) pairs.
      quantity: quantity(kernels, gradients) -> layer -> values of the kernel's
        shape, for one batch; default the gradients themselves.

    Returns:
      layer name -> float64 array of its kernel's shape.

    Raises:
      ValueError: no batches.
    """
    import tensorflow as tf  # Imported here so that configurations load fast.

    totals: Dict[str, np.ndarray] = {}
    count = 0
    for inputs, labels in batches:
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        if not model.built:
            model.build(inputs.shape[1:])
        kernels = model.kernel_variables
        with tf.GradientTape() as tape:
            loss = model.loss(model.forward(inputs, training=False),
                              tf.convert_to_tensor(labels))
        gradients = dict(zip(kernels, tape.gradient(loss, list(kernels.values()))))
        values = gradients if quantity is None else quantity(kernels, gradients)
        for name, value in values.items():
            value = np.asarray(value, dtype=np.float64)
            totals[name] = totals[name] + value if name in totals else value
        count += 1
    if not count:
        raise ValueError("per_weight_quantity needs at least one batch (inputs, labels).")
    return {name: total / count for name, total in totals.items()}


def _missing(what: str, keyword: str) -> ValueError:
    return ValueError(
        f"this pruning score needs {what}, which its context does not provide. The "
        "experiment loop gives it; called by hand, pass context=pruning.Context(masks, "
        f"final, {keyword}=...) (see the README's 'Pruning strategies').")


@dataclasses.dataclass(frozen=True)
class Context:
    """What one pruning step may read.

    Attributes:
      masks: layer -> 0/1 mask of the level being pruned.
      final: layer -> that level's weights at the end of training.
      initial: layer -> level 0's initial weights (None where unknown).
      rewind: layer -> the weights survivors are reset to when that is not
        the initialization (late resetting), else None.
      level: the level the new masks are for (None where unknown).
      order: the model's layer order (model.layer_names), if known.
      model_fn: model_fn(weights, masks) -> a new model whose kernels start at
        `weights` masked by `masks`; None where no model can be made.
      dataset_fn: dataset_fn() -> the training data (a DatasetBase); None
        where there is none.

    Example::

        context = pruning.Context(masks, final, model_fn=lambda w, m: ModelFc(
            lenet, presets=w, masks=m), dataset_fn=lambda: dataset)
        grads = context.gradients(context.train_batches(4))
    """
    masks: Mapping[str, np.ndarray]
    final: Mapping[str, np.ndarray]
    initial: Optional[Mapping[str, np.ndarray]] = None
    rewind: Optional[Mapping[str, np.ndarray]] = None
    level: Optional[int] = None
    order: Optional[Sequence[str]] = None
    model_fn: Optional[Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
                                "ModelBase"]] = None
    dataset_fn: Optional[Callable[[], "DatasetBase"]] = None

    def replace(self, **changes: Any) -> "Context":
        """A copy with the named fields changed."""
        return dataclasses.replace(self, **changes)

    def require(self, *needs: str) -> None:
        """Checks that the context provides each of `needs`.

        Raises ValueError, naming all that is missing, unless the context provides
        each of `needs`: 'model', 'data', 'initial', 'rewind'.

        Raises:
          ValueError: an unknown need, or needs the context does not provide (naming the
            keyword to pass).
        """
        have = {"model": ("the model", "model_fn", self.model_fn),
                "data": ("the training data", "dataset_fn", self.dataset_fn),
                "initial": ("the initial weights", "initial", self.initial),
                "rewind": ("the rewind weights", "rewind", self.rewind)}
        unknown = [need for need in needs if need not in have]
        if unknown:
            raise ValueError(f"require{tuple(unknown)}: name some of {sorted(have)}.")
        missing = [have[need] for need in needs if have[need][2] is None]
        if missing:
            raise _missing(" and ".join(what for what, _, _ in missing),
                           "=..., ".join(keyword for _, keyword, _ in missing))

    def weights(self, which: Union[str, Mapping[str, np.ndarray]] = "final"
                ) -> Mapping[str, np.ndarray]:
        """The weights named `which`: 'final', 'initial' or 'rewind' (or a dict itself).

        Args:
          which: 'final', 'initial' or 'rewind', or a layer -> weights dict returned as it
            is.

        Raises:
          ValueError: an unknown name, or weights this context does not hold.
        """
        if isinstance(which, Mapping):
            return which
        if which not in ("final", "initial", "rewind"):
            raise ValueError(f"weights {which!r}: name 'final', 'initial' or 'rewind', or "
                             "pass a dict layer -> weights.")
        values = getattr(self, which)
        if values is None:
            raise _missing(f"the {which} weights", which)
        return values

    def model(self, weights: Union[str, Mapping[str, np.ndarray]] = "final") -> "ModelBase":
        """A new model holding `weights` (see weights()) under this level's masks.

        Args:
          weights: as in weights(): a name or a layer -> weights dict.

        Raises:
          ValueError: the context has no model_fn.
        """
        if self.model_fn is None:
            raise _missing("the model", "model_fn")
        return self.model_fn(self.weights(weights), self.masks)

    def dataset(self) -> "DatasetBase":
        """The training data.

        Raises:
          ValueError: the context has no dataset_fn.
        """
        if self.dataset_fn is None:
            raise _missing("the training data", "dataset_fn")
        return self.dataset_fn()

    def train_batches(self, count: int, start: int = 0) -> List[Batch]:
        """`count` training batches from iteration `start`, in training's order.

        `count` training batches, those of iterations start .. start+count-1
        (the order training reads them in, so the same seeds give the same batches).

        Args:
          count: how many batches.
          start: the iteration of the first batch.
        """
        data = self.dataset()
        inputs, labels = data.train
        return [(inputs[rows], labels[rows]) for rows in data.batch_indices(start, count)]

    def gradients(self, batches: Iterable[Batch], quantity: Optional[Quantity] = None,
                  weights: Union[str, Mapping[str, np.ndarray]] = "final") -> Network:
        """per_weight_quantity of a model holding `weights`, over `batches`.

        Args:
          batches: (inputs, labels) pairs, e.g. self.train_batches(4).
          quantity: as in per_weight_quantity; default the gradients.
          weights: which weights the model holds (see weights()).

        Returns:
          layer -> float64 mean over the batches, of the kernel's shape.
        """
        return per_weight_quantity(self.model(weights), batches, quantity)
