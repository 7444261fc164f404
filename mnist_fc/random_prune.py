"""Random pruning control: random masks of the ticket's size, original init.

Each layer keeps exactly as many weights as the ticket at that level, chosen
uniformly at random, and trains from the original (level-0) initialization.
"""

from typing import Dict, Optional, Tuple

import numpy as np

from lottery_ticket.foundations import controls
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import train

Network = Dict[str, np.ndarray]


def random_prune(output_dir: str, masks: save_restore.NetworkLike,
    presets: save_restore.NetworkLike, seed: int = 0,
                 mnist_location: str = constants.MNIST_LOCATION,
                 config: Optional[constants.TrainingConfig] = None,
                 train_order_seed: Optional[int] = None) -> Tuple[Network, Network]:
    """Trains a randomly pruned network of the ticket's size.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/random_prune1.
      masks: the ticket's masks, read for their per-layer counts.
      presets: the original, dense initial weights (the level-0 run's
        initial/), not the ticket's masked ones.
      seed: the control's seed.
      mnist_location, config, train_order_seed: as in reinitialize.

    Raises:
      ValueError: `presets` has zeros where the random mask keeps weights,
        i.e. masked initial weights were passed instead of the level-0 ones.
    """
    mask_values = save_restore.standardize(masks)
    original = save_restore.standardize(presets)
    new_masks = controls.random_masks(mask_values, int(seed))
    for name, mask in new_masks.items():
        if name in original and np.any(np.asarray(original[name])[mask != 0] == 0):
            raise ValueError(
                f"presets for layer {name!r} are 0 at positions the random mask keeps: "
                "they look pruned. Pass the dense level-0 initial weights "
                "({trial}/0/lottery/initial), not the ticket's.")
    return train.train_control(
        "random_prune", output_dir, new_masks, original, int(seed),
        {"ticket_masks": masks, "original_presets": presets}, mnist_location, config,
        train_order_seed)
