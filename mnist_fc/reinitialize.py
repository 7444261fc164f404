"""Random reinitialization control: a ticket's mask with other initial values.

Modes, as in the original codebase:
  reinit      a fresh draw from the model's initializer (Glorot normal);
  reuse       each weight sampled from the ticket's initial values in its layer;
  reuse_sign  like reuse, keeping the sign of the ticket's weight at each position.

The generic control is ``experiments.control_runs.reinitialize``.
"""

from typing import Iterable, Optional, Tuple

from lottery_ticket.experiments import control_runs
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.mnist_fc import train


def reinitialize(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, mode: str = "reinit", seed: int = 0,
                 mnist_location: Optional[str] = None,
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains the ticket's structure from a random initialization.

    Args:
      output_dir, masks, presets, mode, seed, train_order_seed: as in
        experiments.control_runs.reinitialize.
      mnist_location: the data; default the ticket's.
      config: default the ticket's configuration; it may differ from the
        ticket's only in the settings `override` names.
      override: settings (or 'data') in which the control may differ.
    """
    return control_runs.reinitialize(output_dir, masks, presets, mode, seed,
                                     train.control_config(config, masks, mnist_location),
                                     train_order_seed, override)
