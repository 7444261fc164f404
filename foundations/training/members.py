"""Checks that K models, data sets and an optimizer can train together as a population."""

from typing import Any, List, Sequence, Tuple, Union

import numpy as np

from lottery_ticket.foundations import runs
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase, bias_key, dropout_seed_key
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training.record import TrainResult

DivergedError = runs.DivergedError

# Keras optimizers whose update of each element reads only that element's gradient
# and state (and the step count): one of them over stacked variables updates every
# member as its own optimizer would. Norm-based ones (LAMB, LARS, Adafactor's
# factored moments) and gradient clipping by norm would mix the members.
ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad",
                          "Adadelta", "Ftrl", "Lion")


class PopulationDivergedError(DivergedError):
    """Some members diverged; the others finished and were written.

    Attributes:
      results: per member, its TrainResult or its DivergedError.
      diverged: the members' DivergedErrors, in member order.
    """

    def __init__(self, results: List[Union[TrainResult, DivergedError]]):
        self.results = results
        self.diverged = [r for r in results if isinstance(r, DivergedError)]
        first = self.diverged[0]
        super().__init__(first.output_dir, first.iteration, first.what)
        self.args = (f"{len(self.diverged)} of {len(results)} members of the population "
                     f"diverged (the first: {first})"
                     f"{'' if len(self.diverged) == len(results) else '; the others completed'}"
                     ". The diverged runs are recorded as such (diverged.json).",)



def check_optimizer(optimizer: Any) -> None:
    """Raises ValueError unless one `optimizer` over stacked variables updates
    each member as the member's own optimizer would."""
    name = type(optimizer).__name__
    module = type(optimizer).__module__
    if name not in ELEMENTWISE_OPTIMIZERS or not module.startswith("keras"):
        raise ValueError(
            f"the optimizer is {module}.{name}; a population trains with one optimizer over "
            "the members' stacked weights, which is only the members' own optimizers for "
            f"elementwise Keras optimizers ({', '.join(ELEMENTWISE_OPTIMIZERS)}).")
    config = optimizer.get_config()
    for key in ("clipnorm", "global_clipnorm"):
        if config.get(key):
            raise ValueError(
                f"the optimizer has {key}={config[key]}: clipping by a norm over a stacked "
                "variable would mix the members' gradients. Train such runs one at a time "
                "(trainer.train), or clip by value (clipvalue), which is elementwise.")


def _sample_rows(count: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, num=min(count, 97)).astype(np.int64))


def check_datasets(datasets: Sequence[DatasetBase]) -> None:
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


def reads_own_variables(model: ModelBase) -> bool:
    """Whether the model's weights are exactly its declared variables: its
    get_current_weights is ModelBase's (kernel * mask per layer in
    `layer_names` order, then bias * bias mask per biased layer), so that
    shapes and values can be read from `kernel_variables` and
    `bias_variables` without running it."""
    # get_current_weights reads through these; a subclass that overrides any of them
    # (a kernel transform, say) is read by running it instead.
    return all(getattr(type(model), name) is getattr(ModelBase, name)
               for name in ("get_current_weights", "effective_kernel", "effective_bias",
                            "biases"))


def weight_layout(model: ModelBase) -> List[Tuple[str, Tuple[int, ...]]]:
    """The keys and shapes of a built model's weights (as
    ``get_current_weights(include_biases=True)`` orders them), then one
    entry per dropout layer's seed: what members of one population share.

    Read from the variables' shapes where the model's weights are its
    variables (no values read: a population checks this for every member).
    """
    if reads_own_variables(model):
        kernels = model.kernel_variables
        shapes = [(name, tuple(int(d) for d in kernels[name].shape))
                  for name in model.layer_names]
        shapes += [(bias_key(name), tuple(int(d) for d in bias.shape))
                   for name, bias in model.bias_variables.items()]
    else:
        shapes = [(key, tuple(np.shape(value)))
                  for key, value in model.get_current_weights(include_biases=True).items()]
    return shapes + [(dropout_seed_key(name), ()) for name in sorted(model.dropout_seeds)]


def check_models(models: Sequence[ModelBase], example_shape: Sequence[int]) -> None:
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
    key = cache_lib.trusted_trace_key(template)
    if key is None:
        raise ValueError(
            f"{type(template).__name__} declares no trace_key (or changes forward, loss, "
            "accuracy or the constructor without declaring its own): a population traces "
            "forward() once for all its members, so the model must say what decides its "
            "computation. Define trace_key() (see ModelBase.trace_key).")
    layout = weight_layout(template)
    for k, model in enumerate(models[1:], start=1):
        other = cache_lib.trusted_trace_key(model)
        if other != key:
            raise ValueError(f"models[{k}] has trace_key {other!r} but models[0] has {key!r}: "
                             "a population has one architecture.")
        theirs = weight_layout(model)
        if theirs != layout:
            differ = [f"{a[0]} {a[1]} vs {b[0]} {b[1]}" for a, b in zip(layout, theirs)
                      if a != b] or [f"{len(theirs)} weights vs {len(layout)}"]
            raise ValueError(f"models[{k}]'s weights differ from models[0]'s ("
                             f"{'; '.join(differ[:4])}): a population has one architecture.")

