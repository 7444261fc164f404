"""The lottery ticket experiment: train, prune, reset, repeat."""

import dataclasses
import logging
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")



@dataclasses.dataclass
class LevelResult:
    """What one pruning level produced."""
    level: int
    masks: Network
    initial: Network  # At levels >= 1: the reset weights with this level's mask applied.
    final: Network
    resumed: bool  # True when read back from a completed run, not trained now.


def experiment(make_dataset: Callable[[], DatasetBase],
               make_model: Callable[[int, Optional[Network], Optional[Network]], ModelBase],
               train_model: Callable[[int, DatasetBase, ModelBase], Tuple[Network, Network]],
               prune_masks: Callable[[Network, Network], Network],
               iterations: int,
               presets: Optional[Network] = None,
               completed_level: Optional[Callable[[int], Optional[Tuple[Network, Network,
                                                                      Network]]]] = None,
               reset_weights: Optional[Callable[[LevelResult], Network]] = None,
               ) -> Dict[int, LevelResult]:
    """Runs iterative magnitude pruning with resetting.

    Level 0 trains the dense network. Each level k >= 1 prunes the masks of
    level k-1 using that level's final weights, resets the surviving weights
    (by default to the level-0 initial values; see `reset_weights`), and
    trains again.

    Args:
      make_dataset: returns the dataset for a training run.
      make_model: make_model(level, presets, masks) returns a new model whose
        kernels start at `presets` (masked by `masks`); both None at level 0
        unless `presets` is given.
      train_model: train_model(level, dataset, model) trains and returns
        (initial_weights, final_weights).
      prune_masks: prune_masks(masks, final_weights) returns the next masks.
      iterations: number of pruning levels after level 0.
      presets: optional initial weights for level 0.
      completed_level: completed_level(level) returns (initial, final, masks)
        of a level that already finished, or None. Finished levels are read
        back instead of retrained, which is how an interrupted experiment
        resumes; asking for more levels than exist extends it.
      reset_weights: reset_weights(level_0) returns the weights (layer name ->
        kernel) that the survivors of every level >= 1 are reset to, given
        level 0's LevelResult once it has trained or been read back; for
        example weights saved at iteration K of level 0 for late resetting.
        None resets to level 0's initial weights.

    Returns:
      level -> LevelResult for levels 0..iterations.

    Raises:
      RuntimeError: a model did not start from the weights it was reset to
        (the level-0 initialization by default, or what reset_weights
        returned) with its mask applied; for example make_model ignored its
        presets.
    """
    if int(iterations) < 0:
        raise ValueError(f"iterations (pruning levels after level 0) must be >= 0, "
                         f"got {iterations}.")
    results: Dict[int, LevelResult] = {}
    reset_to: Optional[Network] = presets
    # Level 0 is checked against its presets, which are its initialization.
    reset_source = "the level-0 initialization"
    masks: Optional[Network] = None
    for level in range(int(iterations) + 1):
        if level > 0:
            previous = results[level - 1]
            masks = prune_masks(previous.masks, previous.final)
        saved = completed_level(level) if completed_level is not None else None
        if saved is not None:
            initial, final, saved_masks = saved
            if masks is not None and not _same(masks, saved_masks):
                raise ValueError(
                    f"level {level} was saved with masks that differ from the ones "
                    "pruning gives now: the saved experiment was made with other "
                    "settings. Use a new output directory.")
            masks = saved_masks
            logger.info("level %d is already complete; reading it back.", level)
            resumed = True
        else:
            model = make_model(level, reset_to, masks)
            initial, final = train_model(level, make_dataset(), model)
            if masks is None:
                masks = model.masks
            resumed = False
        if reset_to is not None:
            expected = {name: reset_to[name] * masks[name] for name in masks
                        if name in reset_to}
            if not _same(expected, {name: initial[name] for name in expected}, exact=False):
                raise RuntimeError(
                    f"level {level} did not start from {reset_source} with its mask "
                    "applied: make_model must build the model with the presets and "
                    "masks it is given.")
        results[level] = LevelResult(level, masks, initial, final, resumed)
        if level == 0:
            if reset_weights is None:
                reset_to = initial
            else:
                reset_to = reset_weights(results[0])
                if reset_to is None:
                    raise TypeError("reset_weights returned None; it must return the "
                                    "weights (layer name -> kernel) to reset to.")
                reset_source = "the weights reset_weights returned"
    return results


def _same(a: Network, b: Network, exact: bool = True) -> bool:
    if set(a) != set(b):
        return False
    compare = np.array_equal if exact else np.allclose
    return all(compare(np.asarray(a[k], np.float32), np.asarray(b[k], np.float32))
               for k in a)
