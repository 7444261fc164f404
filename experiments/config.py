"""Typed experiment configuration, split by concern.

An ``ExperimentConfig`` combines four frozen dataclasses: ``DataConfig`` (which
data and how it is split), ``ModelConfig`` (which network), ``TrainConfig``
(optimizer, length, batches, evaluation) and ``PruneConfig`` (how masks shrink
from level to level). Field names are unique across the four, so a field is
named by itself everywhere: ``config.replace(learning_rate=0.05)``, the runner
flag ``--learning_rate``, and the key ``config.learning_rate`` in messages about
a run's identity. Each field carries its help text; runner flags and ``--help``
are generated from them (see ``lottery_ticket.cli.flags``).

Values are checked and normalized when a configuration is made, so a bad
setting is an error before any work, naming the setting and the fix. The
dataclasses' own defaults are the paper's section 2 setup (LeNet-300-100 on
MNIST, the original codebase's constants); each family states its defaults in
one ``ExperimentConfig`` of its own.
"""

import dataclasses
import re
import typing
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from lottery_ticket.foundations import pruning as pruning_lib
# Registers Zhou et al.'s mask criteria (large_final, movement, ...) as weight scores.
from lottery_ticket.foundations.pruning import criteria as _criteria  # noqa: F401
from lottery_ticket.foundations import registry

# One tuple per layer; what it holds is the model's: (units, activation) for fc.
Layers = Tuple[Tuple[Any, ...], ...]
TrainingLen = Tuple[str, int]
# Layer name -> fraction pruned per level. A named alias: the field's annotation must
# be this very object for coerce() to recognize it.
Percents = Dict[str, float]

_TRAINING_UNITS = ("iterations", "epochs")


def _field(default: Any, help: str, identity: bool = True) -> Any:  # noqa: A002
    """A configuration field with its help; identity=False for settings that do not
    change a run's results (where data lives, how many levels a trial has)."""
    metadata = {"help": help, "identity": identity}
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_training_len(training_len: Any) -> TrainingLen:
    """('iterations', N) or ('epochs', N) from a pair or the text 'iterations:N'.

    Args:
      training_len: a pair (unit, N) or the text 'iterations:N' / 'epochs:N'.

    Raises:
      ValueError: neither form, or N not a whole number >= 1 (the message shows the form).
    """
    if isinstance(training_len, str):
        unit, _, amount = training_len.replace(",", ":").partition(":")
        unit, amount = unit.strip(" ('\"[]"), amount.strip(" )'\"[]")
        if unit in _TRAINING_UNITS and amount.isdigit() and int(amount) > 0:
            return unit, int(amount)
        raise ValueError(
            f"--training_len={training_len!r} is not a training length: write "
            "--training_len=iterations:2000 or --training_len=epochs:10.")
    if (isinstance(training_len, (tuple, list)) and len(training_len) == 2
            and training_len[0] in _TRAINING_UNITS and _is_int(training_len[1])
            and int(training_len[1]) > 0):
        return str(training_len[0]), int(training_len[1])
    raise ValueError(
        f"training_len {training_len!r} must be ('iterations', N) or ('epochs', N) "
        "with N a positive integer, e.g. --training_len=iterations:2000.")


def parse_level_list(levels: Any) -> List[int]:
    """Distinct levels >= 1, sorted, from a list or the text '3,7,12'.

    Args:
      levels: a list of whole numbers, or the text '3,7,12'.

    Raises:
      ValueError: not a list of distinct whole numbers >= 1 (the message shows the form).
    """
    if isinstance(levels, str):
        items = levels.split(",")
    else:
        items = list(levels) if isinstance(levels, Iterable) else [levels]
    texts = [str(item).strip() for item in items]
    if (not texts or any(isinstance(item, bool) for item in items)
            or not all(text.isdigit() for text in texts)
            or min(int(text) for text in texts) < 1 or len(set(map(int, texts))) != len(texts)):
        raise ValueError(f"one-shot levels {levels!r} must be distinct pruning levels >= 1, "
                         "e.g. --oneshot_levels=3,7,12 (level k keeps what iterative "
                         "pruning keeps at level k).")
    parsed = [int(text) for text in texts]
    return sorted(parsed)


def parse_drops(drops: Any) -> List[int]:
    """The learning-rate drop points, increasing whole numbers, from '80,120'.

    Args:
      drops: a list of whole numbers, or the text '80,120' ('' for none).

    Raises:
      ValueError: not increasing positive whole numbers (the message shows the form).
    """
    texts = [text.strip() for text in str(drops).strip("()[] ").split(",") if text.strip()]
    if not all(text.isdigit() and int(text) > 0 for text in texts) or [
            int(t) for t in texts] != sorted(set(int(t) for t in texts)):
        raise ValueError(f"lr_drops {drops!r} must be increasing positive whole numbers, "
                         "e.g. --lr_drops=80,120 (empty for a constant learning rate).")
    return [int(text) for text in texts]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (
        isinstance(value, float) and value.is_integer())


def _parse_layers(layers: Any) -> Layers:
    """A tuple of tuples; what each entry means is the model builder's to check."""
    def item(value: Any) -> Any:
        if value in ("None", "linear"):
            return None
        return int(value) if _is_int(value) else value

    try:
        parsed = tuple(tuple(item(value) for value in layer) for layer in layers)
    except TypeError as error:
        raise ValueError(
            f"layers {layers!r} must be a list of layer descriptions (tuples), e.g. "
            "[(300, 'relu'), (100, 'relu'), (10, None)] for fc.") from error
    return parsed


def _parse_percents(percents: Any) -> Dict[str, float]:
    # The one check of pruning rates, shared with foundations.pruning: True, text, NaN,
    # negatives and rates of 1 or more (which would empty a layer) are refused.
    return pruning_lib.check_percents(percents, "prune_percents")


def coerce(name: str, annotation: Any, value: Any) -> Any:
    """The value as the field's type, or a ValueError naming the field.

    Args:
      name: the field's name (for the message).
      annotation: the field's type.
      value: the value given (a string from a flag, or a value of the type).

    Raises:
      ValueError: the value is not of the field's type (naming the field).
    """
    if annotation is TrainingLen:
        return parse_training_len(value)
    if annotation is Layers:
        return _parse_layers(value)
    if annotation is Percents:
        return _parse_percents(value)
    optional = typing.get_origin(annotation) is typing.Union and type(None) in typing.get_args(
        annotation)
    if optional:
        if value is None:
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{name}={value!r}: expected True or False.")
    if annotation is int:
        if _is_int(value) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            return int(value)
        raise ValueError(f"{name}={value!r}: expected a whole number.")
    if annotation is float:
        if isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: expected a number.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r}: expected a number.") from None
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{name}={value!r}: expected text.")
    return value


class _Concern:
    """Shared behaviour of the four configuration dataclasses."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = coerce(field.name, hints[field.name], getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        self.check()

    def check(self) -> None:
        """Raises ValueError for values out of range; subclasses add their rules.

        Raises:
          ValueError: naming the field, its value and what it may be.
        """

    def to_json(self) -> Dict[str, Any]:
        """The fields as JSON-ready values (tuples as lists)."""
        return {field.name: _json_value(getattr(self, field.name))
                for field in dataclasses.fields(self)}


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _check_at_least(name: str, value: Optional[float], minimum: float) -> None:
    if value is not None and value < minimum:
        raise ValueError(f"{name} is {value}; it must be at least {minimum}.")


@dataclasses.dataclass(frozen=True)
class DataConfig(_Concern):
    """Which data set, where it is, and how it is split."""
    dataset: str = _field("mnist", "Data set: a name registered in "
                          "lottery_ticket.datasets.registry (mnist, fashion_mnist, ...).")
    data_location: str = _field("", "Directory holding the data set's files.",
                                identity=False)
    validation_size: int = _field(5000, "Examples held out from the end of the training "
                                  "set as the validation split (0 for none).")
    flatten: bool = _field(True, "Give each example as a vector (fully-connected "
                           "networks) instead of an image (convolutional ones).")

    def check(self) -> None:
        _check_at_least("validation_size", self.validation_size, 0)


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Concern):
    """Which network."""
    model: str = _field("fc", "Network: a name registered in "
                        "lottery_ticket.experiments.components.MODELS (fc, or a family's).")
    layers: Layers = _field(((300, "relu"), (100, "relu"), (10, None)),
                            "The model's layer descriptions, read by its builder: for fc, "
                            "(units, activation) pairs; empty for a model whose "
                            "architecture is fixed.")
    kernel_initializer: str = _field("glorot_normal", "Keras initializer of kernels "
                                     "without presets.")
    dropout: float = _field(0.0, "Fraction of the fully-connected hidden layers' outputs "
                            "dropped in training (0: none; 0.5 in the paper's section 5); "
                            "evaluation never drops. For models that support it (conv2, "
                            "conv4, conv6).")

    def check(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout is {self.dropout}; it is a fraction in [0, 1) "
                             "(0.5 drops half the activations, 0 turns dropout off).")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Concern):
    """How one network is trained."""
    optimizer: str = _field("sgd", "Optimizer: sgd, momentum or adam (or one "
                            "registered in experiments.components.OPTIMIZERS).")
    learning_rate: float = _field(0.1, "Learning rate.")
    momentum: float = _field(0.9, "Momentum of the 'momentum' optimizer.")
    training_len: TrainingLen = _field(("iterations", 50000), "Training per level: "
                                       "iterations:N or epochs:N.")
    batch_size: int = _field(60, "Examples per training batch.")
    test_interval: int = _field(100, "Evaluate the whole test split every this many "
                                "iterations (0: never).")
    validate_interval: int = _field(100, "Evaluate the validation split every this "
                                    "many iterations (0: never).")
    rewind_iteration: int = _field(0, "Late resetting (rewinding): level 0 saves its "
                                   "weights at iteration K (rewind{K}/) and every later "
                                   "level, one-shot run and control resets its survivors "
                                   "to them and trains from iteration K to the end (N-K "
                                   "iterations, the same batches as level 0 from K on). "
                                   "0: reset to the initialization and train from 0.")
    xla: str = _field("auto", "Compile with XLA: auto (the training loop of networks "
                      "without convolutions, every network's on a GPU; evaluation on a "
                      "GPU), on (both, always) or off. Each run's done.json records what "
                      "was used; the same seeds and setting give the same numbers.",
                      identity=False)
    sparse_below: float = _field(0.05, "With XLA, a fully-connected layer keeping fewer "
                                 "than this fraction of its weights trains as a vector "
                                 "of its survivors (faster when very sparse; equal to "
                                 "float rounding); a population uses the smaller of "
                                 "this and 3%. 0: never.", identity=False)
    overlap_evaluation: str = _field("auto", "Evaluate a copy of the weights on a second "
                                     "thread while a single run trains on: auto (where "
                                     "TensorFlow's threads leave a core idle, e.g. "
                                     "--threads=1 on a multi-core CPU; never in the batch "
                                     "runner), on or off. The numbers are the same bits; "
                                     "done.json says \"overlap_evaluation\": true where "
                                     "it ran.", identity=False)

    nesterov: bool = _field(False, "Nesterov momentum (the 'momentum' optimizer).")
    weight_decay: float = _field(0.0, "Weight decay: with weight_decay_type=l2, "
                                 "0.5 * weight_decay * sum(kernel**2) added to the training "
                                 "loss (as SGD's weight decay in OpenLTH; Keras models "
                                 "only); with decoupled, the optimizer's own weight_decay.")
    weight_decay_type: str = _field("l2", "l2 (a loss term on the kernels) or decoupled "
                                    "(the optimizer shrinks every trained variable).")
    lr_drops: str = _field("", "Piecewise-constant learning rate: the points at which "
                           "it is multiplied by lr_drop_factor, e.g. 80,120 (in "
                           "lr_drop_unit). Empty: constant.")
    lr_drop_unit: str = _field("epochs", "The unit of lr_drops: epochs or iterations.")
    lr_drop_factor: float = _field(0.1, "What the learning rate is multiplied by at each "
                                   "of lr_drops.")
    warmup_iterations: int = _field(0, "Linear learning-rate warm-up from 0 over this "
                                    "many iterations (0: none).")
    label_smoothing: float = _field(0.0, "Label smoothing of the cross-entropy (Keras "
                                    "models; 0: none).")
    augment: str = _field("", "Training-image augmentation of Keras models: crop_flip "
                          "(random crop after zero padding 4, horizontal flip; seeded by "
                          "the run's seed and the iteration) or empty for none.")

    def check(self) -> None:
        if self.weight_decay_type not in ("l2", "decoupled"):
            raise ValueError(f"weight_decay_type is {self.weight_decay_type!r}; it must be "
                             "l2 or decoupled.")
        if self.lr_drop_unit not in _TRAINING_UNITS:
            raise ValueError(f"lr_drop_unit is {self.lr_drop_unit!r}; it must be epochs or "
                             "iterations.")
        parse_drops(self.lr_drops)
        if self.augment not in ("", "crop_flip"):
            raise ValueError(f"augment is {self.augment!r}; it must be crop_flip or empty.")
        _check_at_least("weight_decay", self.weight_decay, 0)
        _check_at_least("warmup_iterations", self.warmup_iterations, 0)
        if not 0 < self.lr_drop_factor <= 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError(f"lr_drop_factor {self.lr_drop_factor} must be in (0, 1] and "
                             f"label_smoothing {self.label_smoothing} in [0, 1).")
        if self.xla not in ("auto", "on", "off"):
            raise ValueError(f"xla is {self.xla!r}; it must be auto, on or off.")
        if self.overlap_evaluation not in ("auto", "on", "off"):
            raise ValueError(f"overlap_evaluation is {self.overlap_evaluation!r}; it must be "
                             "auto, on or off.")
        if not 0.0 <= self.sparse_below <= 1.0:
            raise ValueError(f"sparse_below is {self.sparse_below}; it is a fraction of "
                             "weights in [0, 1] (0 turns the sparse layers off).")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate is {self.learning_rate}; it must be positive.")
        _check_at_least("momentum", self.momentum, 0)
        _check_at_least("batch_size", self.batch_size, 1)
        _check_at_least("test_interval", self.test_interval, 0)
        _check_at_least("validate_interval", self.validate_interval, 0)
        _check_at_least("rewind_iteration", self.rewind_iteration, 0)
        unit, amount = self.training_len
        if unit == "iterations" and self.rewind_iteration >= amount:
            raise ValueError(
                f"rewind_iteration is {self.rewind_iteration} but training_len is "
                f"{amount} iterations: the snapshot must be taken before training ends. "
                f"Pass --rewind_iteration below {amount}.")


@dataclasses.dataclass(frozen=True)
class PruneConfig(_Concern):
    """How the masks shrink from one level to the next."""
    pruning: str = _field("layerwise", "Pruning strategy: a name registered in "
                          "experiments.components.PRUNING: layerwise (each layer loses its "
                          "own fraction), global (the layers that share a rate in "
                          "prune_percents are pooled under one threshold) or unit (whole "
                          "units: kernel columns and conv filters).")
    prune_percents: Percents = _field(
        {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1},
        "Fraction of each layer's surviving weights pruned per level, e.g. "
        "\"{'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}\" (units for --pruning=unit).")
    prune_scores: str = _field("magnitude", "What ranks weights for pruning, lowest "
                               "first: magnitude, random (seeded by prune_seed), snip "
                               "(|w * dL/dw| on the first training batch), grasp, "
                               "synflow, magnitude_at_init, a mask criterion of Zhou "
                               "et al. (large_final, small_final, large_init, "
                               "large_init_large_final, magnitude_increase, movement) "
                               "or a score "
                               "registered in foundations.pruning.WEIGHT_SCORES; for "
                               "--pruning=unit: magnitude (= input_magnitude), "
                               "output_magnitude, magnitude_product or random.")
    synflow_rounds: int = _field(100, "Rounds of synflow pruning per step (rescoring the "
                                 "survivors after each, with an exponential schedule; the "
                                 "paper's 100). Only read by --prune_scores=synflow.")
    prune_seed: int = _field(0, "Seed of random pruning scores, with the trial's --seed: "
                             "the trials of a batch are pruned differently, and the same "
                             "seeds give the same masks.")
    levels: int = _field(30, "Pruning levels after the dense level 0 (a larger number "
                         "extends a finished trial).", identity=False)

    def check(self) -> None:
        _check_at_least("levels", self.levels, 0)
        _check_at_least("prune_seed", self.prune_seed, 0)
        _check_at_least("synflow_rounds", self.synflow_rounds, 1)
        known = pruning_lib.score_names()
        if self.prune_scores not in known:
            guess = registry.closest(self.prune_scores, known)
            hint = f" Did you mean {guess!r}?" if guess else ""
            raise ValueError(f"prune_scores {self.prune_scores!r} is not a pruning score."
                             f"{hint} Scores: {', '.join(known)}.")
        if self.prune_seed and "random" not in self.prune_scores:
            # A seed that changes nothing would still set runs apart (identity, series).
            raise ValueError(f"prune_seed={self.prune_seed} only applies to random pruning "
                             f"scores, not to prune_scores={self.prune_scores!r}: drop it, "
                             "or set prune_scores=random.")


CONCERNS = (("data", DataConfig), ("model", ModelConfig), ("training", TrainConfig),
            ("pruning", PruneConfig))


def _field_docs(cls: type) -> str:
    """The class docstring with an Attributes: section made of its fields' help.

    The help is the one text of a field (runner flags and ``--help`` show it too),
    so the API reference shows it instead of a copy that could go stale.
    """
    lines = [(cls.__doc__ or "").rstrip(), "", "Attributes:"]
    for field in dataclasses.fields(cls):
        # Escaped so that reStructuredText reads the help as plain text.
        text = re.sub(r"([*|`\\])", r"\\\1", field.metadata["help"])
        text = re.sub(r"_(?=\W|$)", r"\\_", text)
        lines.append(f"  {field.name}: {text}")
    return "\n".join(lines) + "\n"


for _, _concern in CONCERNS:
    _concern.__doc__ = _field_docs(_concern)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's results, by concern.

    A field is read by its name, ``config["learning_rate"]``, or through its
    concern, ``config.training.learning_rate``. Example::

        config = ExperimentConfig().replace(training_len=("iterations", 2000),
                                            learning_rate=0.05)

    Attributes:
      data: which data set, where it is, and how it is split (DataConfig).
      model: which network (ModelConfig).
      training: how one network is trained (TrainConfig).
      pruning: how the masks shrink from one level to the next (PruneConfig).
    """
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    pruning: PruneConfig = dataclasses.field(default_factory=PruneConfig)

    @staticmethod
    def fields() -> Dict[str, Tuple[str, dataclasses.Field]]:
        """Every field by name: name -> (concern, dataclasses.Field)."""
        return {field.name: (concern, field) for concern, cls in CONCERNS
                for field in dataclasses.fields(cls)}

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        for concern, _ in CONCERNS:
            part = getattr(self, concern)
            for field in dataclasses.fields(part):
                yield field.name, getattr(part, field.name)

    def __getitem__(self, name: str) -> Any:
        """config['learning_rate']: a field by its (unique) name, from its concern."""
        fields = ExperimentConfig.fields()
        if name not in fields:
            raise KeyError(unknown_setting_message(name, fields))
        return getattr(getattr(self, fields[name][0]), name)

    def replace(self, **values: Any) -> "ExperimentConfig":
        """A copy with the named fields changed (checked like any new configuration).

        Raises:
          ValueError: an unknown field (naming the closest known one) or a bad value.
        """
        fields = ExperimentConfig.fields()
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(unknown_setting_message(unknown[0], fields))
        changes: Dict[str, Dict[str, Any]] = {}
        for name, value in values.items():
            changes.setdefault(fields[name][0], {})[name] = value
        return dataclasses.replace(self, **{
            concern: dataclasses.replace(getattr(self, concern), **fields_)
            for concern, fields_ in changes.items()})

    def to_json(self) -> Dict[str, Dict[str, Any]]:
        """The configuration nested by concern, as JSON-ready values."""
        return {concern: getattr(self, concern).to_json() for concern, _ in CONCERNS}

    @classmethod
    def from_json(cls, values: Mapping[str, Any],
                  base: Optional["ExperimentConfig"] = None) -> "ExperimentConfig":
        """The configuration from to_json()'s output, or from a flat name -> value map.

        Fields missing from `values` keep their value in `base` (default: the
        dataclasses' defaults), as for a run written before the field existed.

        Args:
          values: to_json()'s output (by concern), or a flat field name -> value map.
          base: the configuration whose values fill the fields `values` lacks (None: the
            defaults).

        Raises:
          ValueError: an unknown field (naming the closest known one) or a bad value.
        """
        flat: Dict[str, Any] = {}
        for key, value in values.items():
            if key in dict(CONCERNS) and isinstance(value, Mapping):
                flat.update(value)
            else:
                flat[key] = value
        return (base or cls()).replace(**flat)

    @staticmethod
    def non_identity_fields() -> Tuple[str, ...]:
        """Fields that do not change a run's results (left out of its identity)."""
        return tuple(name for name, (_, field) in ExperimentConfig.fields().items()
                     if not field.metadata.get("identity", True))

    def identity_defaults(self) -> Dict[str, Any]:
        """'config.{field}' -> value: how a run predating a field is compared on it."""
        return {f"config.{name}": _json_value(value) for name, value in self}


# Recorded in run_info beside the configuration but decided by it (the pruning rule's
# get_config()), so never compared: runs made before it was recorded still resume.
RECORDED_ONLY = ("pruning_rule",)


def identity_ignore() -> Tuple[str, ...]:
    """Identity keys that do not set runs apart, for runs.identity().

    The fields that do not change results, and what the configuration decides
    (RECORDED_ONLY).
    """
    return tuple(f"config.{name}" for name in ExperimentConfig.non_identity_fields()) + \
        RECORDED_ONLY


def unknown_setting_message(name: str, known: Iterable[str]) -> str:
    """'unknown setting X; did you mean Y?' with the list of settings.

    Args:
      name: the unknown setting.
      known: the settings there are.
    """
    guess = registry.closest(name, known)
    hint = f" Did you mean {guess!r}?" if guess else ""
    return (f"unknown setting {name!r}.{hint} Settings: {', '.join(sorted(known))}.")
