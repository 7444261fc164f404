"""Random reinitialization control: a ticket's mask with other initial values.

Modes, as in the original codebase:
  reinit      a fresh draw from the model's initializer (Glorot normal);
  reuse       each weight sampled from the ticket's initial values in its layer;
  reuse_sign  like reuse, keeping the sign of the ticket's weight at each position.
"""

from typing import Dict, Optional, Tuple

import numpy as np

from lottery_ticket.foundations import controls
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import train

Network = Dict[str, np.ndarray]


def control_presets(mode: str, masks: Network, presets: Optional[Network], seed: int
                    ) -> Tuple[Optional[Network], int]:
    """(presets, model seed) of a reinitialization control."""
    if mode not in controls.REINITIALIZE_MODES:
        raise ValueError(f"mode {mode!r} is not one of {controls.REINITIALIZE_MODES}.")
    if mode == "reinit":
        return None, controls.reinit_seed(seed)
    if presets is None:
        raise ValueError(f"mode {mode!r} samples from the ticket's initial weights: pass "
                         "--presets=DIR (the lottery run's initial/).")
    return controls.reuse_presets(masks, presets, seed, keep_sign=mode == "reuse_sign"), seed


def reinitialize(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, mode: str = "reinit", seed: int = 0,
                 mnist_location: str = constants.MNIST_LOCATION,
                 config: Optional[constants.TrainingConfig] = None,
                 train_order_seed: Optional[int] = None) -> Tuple[Network, Network]:
    """Trains the ticket's structure from a random initialization.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/reinit1.
      masks: the ticket's masks (dict or directory, e.g. .../lottery/masks).
      presets: the ticket's initial weights (.../lottery/initial); needed by
        reuse and reuse_sign.
      mode: reinit, reuse or reuse_sign.
      seed: the control's seed; other seeds give other initializations.
      mnist_location, config: data and training settings.
      train_order_seed: batch order; default `seed`.

    Returns:
      (initial_weights, final_weights).
    """
    mask_values = save_restore.standardize(masks)
    new_presets, model_seed = control_presets(mode, mask_values,
                                              save_restore.standardize(presets), int(seed))
    return train.train_control(
        mode, output_dir, mask_values, new_presets, int(seed),
        {"ticket_masks": masks, "ticket_presets": presets}, mnist_location, config,
        train_order_seed, model_seed=model_seed)
