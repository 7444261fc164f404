"""Random pruning control: random masks of the ticket's size, original init.

Each layer keeps exactly as many weights as the ticket at that level, chosen
uniformly at random, and trains from the original (level-0) initialization.
The generic control is ``experiments.control_runs.random_prune``.
"""

from typing import Iterable, Optional, Tuple

from lottery_ticket.experiments import control_runs
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.mnist_fc import train


def random_prune(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike, seed: int = 0,
                 mnist_location: Optional[str] = None,
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains a randomly pruned network of the ticket's size.

    Args as in mnist_fc.reinitialize.reinitialize; `presets` is the dense
    level-0 initial weights (the level-0 run's initial/), not the ticket's.
    """
    return control_runs.random_prune(output_dir, masks, presets, seed,
                                     train.control_config(config, masks, mnist_location),
                                     train_order_seed, override)
