"""An experiment family: one architecture's defaults and where its entry points live."""

import dataclasses
from typing import Dict, Mapping

from lottery_ticket.experiments.config import ExperimentConfig


@dataclasses.dataclass(frozen=True)
class Family:
    """What the generic runners and argfiles need to know about a family.

    Attributes:
      name: the family's name, e.g. 'mnist_fc'.
      package: its Python package; runners and argfiles are looked up in its
        ``runners`` and ``argfiles`` subpackages.
      defaults: the default configuration of every run of the family.
      experiment_root: default root of its experiment trees.
      flag_aliases: extra flag names: alias -> configuration field (e.g.
        {'mnist_location': 'data_location'}).
      location_flag: the flag name its argfiles write for the data location.
      model_defaults: model name -> the defaults of runs of that model, for a
        family whose models differ in their settings (cifar10_conv: learning
        rate, length, prune_percents); a runner given --model starts from
        these before applying the other flags. Models not named use `defaults`.
    """
    name: str
    package: str
    defaults: ExperimentConfig
    experiment_root: str
    flag_aliases: Dict[str, str] = dataclasses.field(default_factory=dict)
    location_flag: str = "data_location"
    model_defaults: Mapping[str, ExperimentConfig] = dataclasses.field(default_factory=dict)

    def defaults_for(self, model: str) -> ExperimentConfig:
        """The default configuration of the family's runs of `model`."""
        return self.model_defaults.get(model, self.defaults)

    def for_model(self, model: str) -> "Family":
        """This family with `model`'s defaults as its defaults (e.g. for argfiles)."""
        return dataclasses.replace(self, defaults=self.defaults_for(model))

    @property
    def runners_package(self) -> str:
        """Where the family's runner modules live."""
        return f"{self.package}.runners"

    @property
    def argfiles_package(self) -> str:
        """Where the family's argfile modules live."""
        return f"{self.package}.argfiles"
