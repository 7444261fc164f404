"""Training one LeNet-300-100 network on MNIST, optionally masked and preset.

The generic function is ``experiments.single_run.train``; this one keeps the
family's argument names and defaults.
"""

from typing import Any, Mapping, Optional, Tuple

from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.mnist_fc import constants


def train(output_dir: str, mnist_location: Optional[str] = None,
          config: Optional[ExperimentConfig] = None,
          masks: save_restore.NetworkLike = None, presets: save_restore.NetworkLike = None,
          seed: int = 0, train_order_seed: Optional[int] = None,
          run_info: Optional[Mapping[str, Any]] = None) -> Tuple[Network, Network]:
    """Trains one network into `output_dir` (see experiments.single_run.train).

    Args:
      output_dir: the run directory; a complete run with the same settings is
        read back, one with other settings is a ValueError.
      mnist_location: directory of the MNIST (or Fashion-MNIST) IDX files;
        default the configuration's.
      config: default constants.DEFAULT.
      masks, presets: dicts or saved directories.
      seed, train_order_seed, run_info: as in single_run.train.
    """
    config = config or constants.DEFAULT
    if mnist_location is not None:
        config = config.replace(data_location=mnist_location)
    return single_run.train(output_dir, config, masks=masks, presets=presets, seed=seed,
                            train_order_seed=train_order_seed, run_info=run_info)


def control_config(config: Optional[ExperimentConfig], masks: save_restore.NetworkLike,
                   mnist_location: Optional[str]) -> Optional[ExperimentConfig]:
    """A control's configuration before its ticket check: `config`, else the
    ticket's (read from the run holding `masks`), with `mnist_location` as the
    data location if given; None if there is neither (the control then says so)."""
    from lottery_ticket.experiments import control_runs
    if config is None:
        ticket = control_runs.ticket_run(masks)
        if ticket is None:
            return None
        config = control_runs.ticket_config(ticket)
    if mnist_location is not None:
        config = config.replace(data_location=mnist_location)
    elif not config["data_location"]:
        config = config.replace(data_location=constants.MNIST_LOCATION)
    return config
