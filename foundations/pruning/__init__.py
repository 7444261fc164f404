"""Pruning for the lottery ticket experiment: scores rank, a selection removes.

A pruning step is two separate choices, made into one ``PruningRule``:

* **scores** rank what may be removed (``scores.py``; ``WEIGHT_SCORES`` and
  ``UNIT_SCORES`` by name). Weight scores: ``magnitude`` (``|w|`` of the final
  weights, the paper's), ``random`` (uniform draws seeded by ``seed`` and the
  layer's name) and ``snip`` (``|w * dL/dw|`` on training batches; ``snip.py``).
  Unit scores (for unit pruning): ``input_magnitude`` (L2 norm of a unit's
  surviving incoming weights), ``output_magnitude`` (of its surviving outgoing
  weights in the next layer), ``magnitude_product`` (the two multiplied) and
  ``random``.
* **selection** decides how many go and among which weights
  (``selections.py``; ``SELECTIONS`` by name):

  - ``layerwise``: each layer loses count_to_prune(p, its surviving weights)
    of its lowest-scoring survivors (the paper's, and ``prune_by_percent``);
  - ``global``: layers are pooled and each pool loses count_to_prune(p, the
    surviving weights of the whole pool) under one threshold. By default the
    layers that share a rate form one pool, the output layer alone: LeNet's
    ``{'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}`` prunes 20% of layer0 and
    layer1 together and the output layer on its own at 10%. ``groups``
    names the pools explicitly instead;
  - ``unit``: removes whole units: a dense kernel's output column or a conv
    kernel's output filter (the last axis), and by default the matching
    input of the next layer; each layer loses count_to_prune(p, its surviving
    units).

A score receives a ``Context`` (``context.py``): the masks, the final, initial
and rewind weights, and on request the model, the training data and per-weight
quantities of the loss's gradients (``Context.gradients``,
``per_weight_quantity``). The experiment loop gives one to every pruning
function that accepts ``context``.

Every selection is exact (counts are rounded once, halves up), never revives
a pruned weight, and breaks ties deterministically: by layer order, then by
flat index (by unit index for units), lowest first. Layer order is the
natural order of the layer names (layer2 before layer10) unless ``order``
gives the model's own. Random scores are one fixed draw per (seed, layer):
iterating keeps removing the lowest of the same draw, so the same seed gives
the same masks at every level, however the levels are reached.

Rates are checked by ``check_rate`` (``rates.py``), the one check the
configuration shares: a fraction in [0, 1); a rate of 1 would empty a layer.
"""

from lottery_ticket.foundations.pruning.context import (Context, per_weight_quantity)
from lottery_ticket.foundations.pruning.layers import (
    check_layers, check_shapes, input_norms, layer_order, next_layers, ordered, output_layer,
    rate_groups, surviving_units, unit_inputs, unit_norms)
from lottery_ticket.foundations.pruning.rates import (check_percents, check_rate,
                                                      count_to_prune)
from lottery_ticket.foundations.pruning.rule import (PruningRule, accepts_context,
                                                     call_with_context,
                                                     accepts_keyword, check_strategy, prune,
                                                     prune_by_percent)
from lottery_ticket.foundations.pruning.scores import (
    RANDOM_SCORES, UNIT_ALIASES, UNIT_SCORES, WEIGHT_SCORES, FunctionScore, InputMagnitude,
    LayerScore, Magnitude, MagnitudeProduct, OutputMagnitude, RandomUnits, RandomWeights,
    Score, UnitNormScore, check_seed, random_draw, score_names, score_settings, unit_scores, weight_scores)
from lottery_ticket.foundations.pruning.selections import (
    SELECTIONS, Global, Layerwise, Selection, Unit, check_groups, check_unit_layers,
    make_selection, rate_leaving, select_global, select_layerwise, select_units,
    survivors_after)
from lottery_ticket.foundations.pruning.snip import Snip
from lottery_ticket.foundations.pruning.grasp import Grasp, hessian_gradient_product
from lottery_ticket.foundations.pruning.synflow import SynFlow, synaptic_flow
from lottery_ticket.foundations.pruning.magnitude_at_init import MagnitudeAtInit
from lottery_ticket.foundations.pruning.inverted import Inverted

__all__ = [
    "Context", "per_weight_quantity", "check_layers", "check_shapes", "input_norms",
    "layer_order", "next_layers", "ordered", "output_layer", "rate_groups",
    "surviving_units", "unit_inputs", "unit_norms", "check_percents", "check_rate",
    "count_to_prune", "PruningRule", "accepts_context", "call_with_context", "accepts_keyword", "check_strategy",
    "prune", "prune_by_percent", "RANDOM_SCORES", "UNIT_ALIASES", "UNIT_SCORES",
    "WEIGHT_SCORES", "FunctionScore", "InputMagnitude", "LayerScore", "Magnitude",
    "MagnitudeProduct", "OutputMagnitude", "RandomUnits", "RandomWeights", "Score",
    "UnitNormScore", "check_seed", "random_draw", "score_names", "unit_scores",
    "weight_scores", "SELECTIONS", "Global", "Layerwise", "Selection", "Unit",
    "check_groups", "check_unit_layers", "make_selection", "select_global",
    "select_layerwise", "select_units", "survivors_after", "rate_leaving", "Snip",
    "Grasp", "hessian_gradient_product", "SynFlow", "synaptic_flow", "MagnitudeAtInit",
    "Inverted", "score_settings",
]
