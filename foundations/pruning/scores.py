"""Pruning scores: what ranks the weights (or units) a selection removes, lowest first.

A score is a class with ``__call__(context, layers, seed)`` returning layer ->
float64 scores (the kernel's shape for weight scores, [units] for unit scores),
registered by name in ``WEIGHT_SCORES`` or ``UNIT_SCORES``. ``LayerScore`` and
``UnitNormScore`` are the shapes most scores take: one layer's final weights at a
time, and a unit's incoming and outgoing weight norms.
"""

import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from lottery_ticket.foundations.pruning import layers as layers_lib
from lottery_ticket.foundations.pruning.context import Context
from lottery_ticket.foundations.registry import Registry


class Score:
    """Base of pruning scores.

    Subclasses implement __call__ (or the narrower method of LayerScore or UnitNormScore)
    and may take settings in __init__, which get_config reports.
    """

    # Random scores need a seed (the rule refuses to run without one).
    random: bool = False
    # Iterative scores (synflow): the rule removes a step's weights over this many
    # rounds, rescoring the survivors each round (PruningRule.__call__).
    rounds: int = 1
    # Constructor argument -> the configuration field (experiments.config) that sets it.
    settings: Mapping[str, str] = {}

    def __call__(self, context: Context, layers: Sequence[str],
                 seed: Optional[int]) -> Dict[str, np.ndarray]:
        """Scores of `layers`, low first.

        Args:
          context: the masks, weights and (on request) model and data.
          layers: the layers to score.
          seed: the rule's seed (for random scores; None otherwise).

        Returns:
          layer -> float64 scores (kernel's shape, or [units] for unit scores).
        """
        raise NotImplementedError(f"{type(self).__name__} must define __call__.")

    def get_config(self) -> Dict[str, Any]:
        """The score's settings, JSON-ready (what from_config takes)."""
        return {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Score":
        """The score with the settings get_config reported.

        Args:
          config: a dict get_config returned.
        """
        return cls(**dict(config))


class LayerScore(Score):
    """A weight score computed one layer at a time from its final weights."""

    def layer(self, name: str, weights: np.ndarray, mask: np.ndarray,
              seed: Optional[int]) -> np.ndarray:
        """Scores of one layer's weights (its shape).

        Args:
          name: the layer's name.
          weights: the layer's weights (the final ones, for the paper's magnitude).
          mask: the layer's current mask.
          seed: the pruning seed (used by random scores).
        """
        raise NotImplementedError(f"{type(self).__name__} must define layer().")

    def __call__(self, context, layers, seed):
        return {name: np.asarray(self.layer(name, np.asarray(context.final[name]),
                                            context.masks[name], seed), dtype=np.float64)
                for name in layers}


def random_draw(name: str, shape: Tuple[int, ...], seed: Optional[int]) -> np.ndarray:
    """Uniform [0, 1) draws of `shape`, one fixed draw per (seed, layer name).

    Args:
      name: the layer's name.
      shape: the shape of the draws.
      seed: the pruning seed.
    """
    # Keyed by the layer's name, not its position, so a layer's draw does not change
    # when other layers are added, left out or listed in another order.
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    return rng.random(shape)


class Magnitude(LayerScore):
    """``|w|`` of the final weights (the paper's)."""

    def layer(self, name: str, weights: np.ndarray, mask: np.ndarray,
              seed: Optional[int]) -> np.ndarray:
        return np.abs(np.asarray(weights, dtype=np.float64))


class RandomWeights(LayerScore):
    """Uniform draws seeded by the seed and the layer's name."""
    random = True

    def layer(self, name: str, weights: np.ndarray, mask: np.ndarray,
              seed: Optional[int]) -> np.ndarray:
        return random_draw(name, np.shape(weights), seed)


class UnitNormScore(Score):
    """A unit score from the L2 norms of each unit's surviving weights.

    Its incoming weights, and its outgoing weights (the next layer's matching inputs).
    """

    # Whether the score reads the outgoing norms, so the layer needs a next layer.
    needs_next: bool = False

    def units(self, inputs: np.ndarray, outputs: Optional[np.ndarray], name: str,
              units: int, seed: Optional[int]) -> np.ndarray:
        """float64 [units] from the norms (outputs None: the layer has no next).

        Args:
          inputs: L2 norm of each unit's surviving incoming weights, float64 [units].
          outputs: L2 norm of each unit's surviving outgoing weights in the next layer, or
            None.
          name: the layer's name.
          units: the layer's number of units.
          seed: the pruning seed (used by random scores).
        """
        raise NotImplementedError(f"{type(self).__name__} must define units().")

    def __call__(self, context, layers, seed):
        following = layers_lib.next_layers(list(context.masks), context.order)
        result = {}
        for name in layers:
            units = np.shape(context.masks[name])[-1]
            inputs = layers_lib.unit_norms(context.final[name], context.masks[name])
            outputs = None
            after = following.get(name)
            if after is not None:
                feeding = layers_lib.unit_inputs(name, units, after,
                                                 np.shape(context.masks[after]))
                outputs = layers_lib.input_norms(context.final[after], context.masks[after],
                                                 feeding, units)
            elif self.needs_next:
                raise ValueError(f"{type(self).__name__} scores read the weights of the "
                                 f"layer after {name!r}, which has none.")
            result[name] = np.asarray(self.units(inputs, outputs, name, units, seed),
                                      dtype=np.float64)
        return result


class InputMagnitude(UnitNormScore):
    """The L2 norm of a unit's surviving incoming weights."""

    def units(self, inputs: np.ndarray, outputs: Optional[np.ndarray], name: str,
              units: int, seed: Optional[int]) -> np.ndarray:
        return inputs


class OutputMagnitude(UnitNormScore):
    """The L2 norm of a unit's surviving outgoing weights."""
    needs_next = True

    def units(self, inputs: np.ndarray, outputs: Optional[np.ndarray], name: str,
              units: int, seed: Optional[int]) -> np.ndarray:
        return outputs


class MagnitudeProduct(UnitNormScore):
    """Incoming norm times outgoing norm."""
    needs_next = True

    def units(self, inputs: np.ndarray, outputs: Optional[np.ndarray], name: str,
              units: int, seed: Optional[int]) -> np.ndarray:
        return inputs * outputs


class RandomUnits(UnitNormScore):
    """Uniform draws per unit, seeded by the seed and the layer's name."""
    random = True

    def units(self, inputs: np.ndarray, outputs: Optional[np.ndarray], name: str,
              units: int, seed: Optional[int]) -> np.ndarray:
        return random_draw(name, (units,), seed)


class FunctionScore(Score):
    """A score registered as a plain function (the form before scores were classes).

    score(name, weights, mask, seed) for weights, score(inputs, outputs, name, units, seed)
    for units.

    Args:
      function: the score function, with the signature of its kind (above).
      per: 'weight' (a weight score) or 'unit' (a unit score).
    """

    def __init__(self, function: Callable, per: str = "weight"):
        self.function, self.per = function, per

    def __call__(self, context, layers, seed):
        if self.per == "weight":
            return {name: np.asarray(self.function(name, np.asarray(context.final[name]),
                                                   context.masks[name], seed), np.float64)
                    for name in layers}
        adapter = UnitNormScore()
        adapter.units = lambda inputs, outputs, name, units, seed: self.function(
            inputs, outputs, name, units, seed)
        return adapter(context, layers, seed)


WEIGHT_SCORES: Registry[Any] = Registry("weight score")
WEIGHT_SCORES.register("magnitude", Magnitude)
WEIGHT_SCORES.register("random", RandomWeights)

UNIT_SCORES: Registry[Any] = Registry("unit score")
UNIT_SCORES.register("input_magnitude", InputMagnitude)
UNIT_SCORES.register("output_magnitude", OutputMagnitude)
UNIT_SCORES.register("magnitude_product", MagnitudeProduct)
UNIT_SCORES.register("random", RandomUnits)
# "magnitude", every selection's default, means a unit's incoming weights' magnitude.
UNIT_ALIASES = {"magnitude": "input_magnitude"}
RANDOM_SCORES = ("random",)


def make_score(registry: Registry, name: str, config: Optional[Mapping[str, Any]] = None
               ) -> Score:
    """The score registered as `name` in `registry`, with `config`'s settings.

    Args:
      registry: WEIGHT_SCORES or UNIT_SCORES.
      name: the score's name.
      config: its settings (as get_config reports them); None: the defaults.

    Raises:
      ValueError: an unknown name (naming the closest).
    """
    entry = registry.get(name)
    if isinstance(entry, type) and issubclass(entry, Score):
        return entry.from_config(config or {})
    if isinstance(entry, Score):
        return entry
    return FunctionScore(entry, "unit" if registry is UNIT_SCORES else "weight")


def score_settings(scores: str, value_of: Callable[[str], Any]) -> Optional[Dict[str, Any]]:
    """The settings a configuration gives the weight score `scores`, or None.

    They are its class's `settings` (constructor argument -> configuration field), read by
    value_of; None when it takes none from there.

    Args:
      scores: the weight score's name.
      value_of: reads a configuration field by name.
    """
    entry = WEIGHT_SCORES.get(scores) if scores in WEIGHT_SCORES else None
    settings = getattr(entry, "settings", None) or {}
    return {argument: value_of(field) for argument, field in settings.items()} or None


def is_random(registry: Registry, name: str) -> bool:
    """Whether the score `name` is random (needs a seed).

    Args:
      registry: WEIGHT_SCORES or UNIT_SCORES.
      name: the score's name.
    """
    entry = registry.get(name)
    return name in RANDOM_SCORES or bool(getattr(entry, "random", False))


def check_seed(scores: str, seed: Optional[int], random: Optional[bool] = None) -> None:
    """Raises ValueError if a random score has no seed, a whole number >= 0.

    Args:
      scores: the score's name (for the message, and whether it is random).
      seed: the pruning seed given.
      random: whether the score is random; None: whether `scores` is in RANDOM_SCORES.

    Raises:
      ValueError: a random score without a seed that is a whole number >= 0.
    """
    if not (scores in RANDOM_SCORES if random is None else random):
        return
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or seed < 0:
        raise ValueError(f"{scores} scores need a seed, a whole number >= 0 (got {seed!r}), "
                         "so that the masks can be made again: pass seed=N "
                         "(--prune_seed=N).")


def score_names() -> List[str]:
    """Every score name any selection accepts (for checking a configuration)."""
    return sorted(set(WEIGHT_SCORES.names()) | set(UNIT_SCORES.names()) | set(UNIT_ALIASES))


def weight_scores(layers: Sequence[str], masks: Mapping[str, np.ndarray],
                  final_weights: Mapping[str, np.ndarray], scores: str = "magnitude",
                  seed: Optional[int] = None, context: Optional[Context] = None
                  ) -> Dict[str, np.ndarray]:
    """Scores of every weight of `layers` (float64, the weights' shapes); low goes first.

    Args:
      layers: the layers to score.
      masks: layer -> mask (1 keeps a weight, 0 has pruned it).
      final_weights: layer -> final weights of the level.
      scores: a name in WEIGHT_SCORES.
      seed: for random scores.
      context: for scores that read more than the final weights.

    Raises:
      ValueError: an unknown score name (naming the closest), or random scores
        without a seed.
    """
    check_seed(scores, seed, is_random(WEIGHT_SCORES, scores))
    context = (context or Context(masks, final_weights)).replace(masks=masks,
                                                                 final=final_weights)
    return make_score(WEIGHT_SCORES, scores)(context, list(layers), seed)


def unit_scores(layers: Sequence[str], masks: Mapping[str, np.ndarray],
                final_weights: Mapping[str, np.ndarray], scores: str = "input_magnitude",
                seed: Optional[int] = None,
                following: Optional[Mapping[str, Optional[str]]] = None,
                context: Optional[Context] = None) -> Dict[str, np.ndarray]:
    """Scores of every unit of `layers` (float64 [units]); low goes first.

    Args:
      layers: the layers to score.
      masks: every layer's mask (the next layers' too, for output scores).
      final_weights: every layer's final weights (the next layers' too, for output
        scores).
      scores: input_magnitude, output_magnitude, magnitude_product or random
        (a name in UNIT_SCORES; "magnitude" means input_magnitude).
      seed: for random scores.
      following: layer -> the next layer; default next_layers(masks). It must
        be the order's: pass it as the context's order instead where possible.
      context: for scores that read more than the final weights.

    Raises:
      ValueError: an unknown score name, random scores without a seed.
    """
    scores = UNIT_ALIASES.get(scores, scores)
    check_seed(scores, seed, is_random(UNIT_SCORES, scores))
    context = (context or Context(masks, final_weights)).replace(masks=masks,
                                                                 final=final_weights)
    if following is not None and context.order is None:
        # The chain of `following` from its first layer is the order it implies.
        order = [name for name in following if name not in set(following.values())]
        while order and following.get(order[-1]) is not None:
            order.append(following[order[-1]])
        if set(order) >= set(masks):
            context = context.replace(order=[name for name in order if name in masks])
    return make_score(UNIT_SCORES, scores)(context, list(layers), seed)
