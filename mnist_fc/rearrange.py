"""Random rearrangement control: a ticket's initial values at random positions.

Each layer keeps its number of surviving weights and their initial values,
but the connections move to uniformly random positions within the layer
(paper, section 2.2).
"""

from typing import Dict, Optional, Tuple

import numpy as np

from lottery_ticket.foundations import controls
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import train

Network = Dict[str, np.ndarray]


def rearrange(output_dir: str, masks: save_restore.NetworkLike,
    presets: save_restore.NetworkLike, seed: int = 0,
              mnist_location: str = constants.MNIST_LOCATION,
              config: Optional[constants.TrainingConfig] = None,
              train_order_seed: Optional[int] = None) -> Tuple[Network, Network]:
    """Trains the ticket's initial values rearranged within each layer.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/rearrange1.
      masks: the ticket's masks (dict or directory).
      presets: the ticket's initial weights (dict or directory).
      seed: the control's seed.
      mnist_location, config, train_order_seed: as in reinitialize.

    Returns:
      (initial_weights, final_weights).
    """
    new_masks, new_presets = controls.rearrange(save_restore.standardize(masks),
                                                save_restore.standardize(presets), int(seed))
    return train.train_control(
        "rearrange", output_dir, new_masks, new_presets, int(seed),
        {"ticket_masks": masks, "ticket_presets": presets}, mnist_location, config,
        train_order_seed)
