"""Random rearrangement control: a ticket's initial values at random positions.

Each layer keeps its number of surviving weights and their initial values, but
the connections move to uniformly random positions within the layer (paper,
section 2.2). The generic control is ``experiments.control_runs.rearrange``.
"""

from typing import Iterable, Optional, Tuple

from lottery_ticket.experiments import control_runs
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.mnist_fc import train


def rearrange(output_dir: str, masks: save_restore.NetworkLike,
              presets: save_restore.NetworkLike, seed: int = 0,
              mnist_location: Optional[str] = None,
              config: Optional[ExperimentConfig] = None,
              train_order_seed: Optional[int] = None, override: Iterable[str] = ()
              ) -> Tuple[Network, Network]:
    """Trains the ticket's initial values rearranged within each layer.

    Args as in mnist_fc.reinitialize.reinitialize; `presets` is the ticket's
    initial weights.
    """
    return control_runs.rearrange(output_dir, masks, presets, seed,
                                  train.control_config(config, masks, mnist_location),
                                  train_order_seed, override)
