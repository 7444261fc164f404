"""An experiment family: one architecture's defaults and where its entry points live.

A family's entry points are declared by its Family: its runner and argfile
modules (``{package}.runners.NAME``, ``{package}.argfiles.NAME``) are those of
the experiment kinds it offers (``experiments.kinds``; every registered kind
unless ``kinds`` names some), and each module is one line that asks for its
command by name: ``COMMAND, main = runners.entry_point(FAMILY, "oneshot")`` or
``main = argfiles.entry_point(FAMILY, "oneshot_argfile")``.
"""

import dataclasses
from typing import Dict, List, Mapping, Optional, Tuple

from lottery_ticket.experiments import kinds as kinds_lib
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
      kinds: the experiment kinds (experiments.kinds names) the family offers
        entry points for; None: every registered kind.
    """
    name: str
    package: str
    defaults: ExperimentConfig
    experiment_root: str
    flag_aliases: Dict[str, str] = dataclasses.field(default_factory=dict)
    location_flag: str = "data_location"
    model_defaults: Mapping[str, ExperimentConfig] = dataclasses.field(default_factory=dict)
    kinds: Optional[Tuple[str, ...]] = None

    def offered_kinds(self) -> List[kinds_lib.Kind]:
        """The registered experiment kinds the family has entry points for."""
        return [kind for kind in kinds_lib.all_kinds()
                if self.kinds is None or kind.name in self.kinds]

    def runner_modules(self) -> List[str]:
        """The family's runner modules: one per kind it offers, and its argfile runner."""
        return [f"{self.runners_package}.{kind.runner}" for kind in self.offered_kinds()
                if kind.command is not None] + [f"{self.runners_package}.argfile_runner"]

    def argfile_modules(self) -> List[str]:
        """The family's argfile modules: one per kind it offers that has an argfile."""
        return [f"{self.argfiles_package}.{kind.argfile}" for kind in self.offered_kinds()
                if kind.argfile is not None and kind.argfile_main is not None]

    def check_offers(self, kind: str) -> None:
        """Raises ValueError unless the family offers the experiment kind `kind`.

        Args:
          kind: an experiment kind's name (experiments.kinds).

        Raises:
          ValueError: naming the kinds the family offers.
        """
        if self.kinds is not None and kind not in self.kinds:
            raise ValueError(f"the family {self.name} offers the experiment kinds "
                             f"{', '.join(self.kinds)}, not {kind!r}: add it to its "
                             "Family(kinds=...).")

    def defaults_for(self, model: str) -> ExperimentConfig:
        """The default configuration of the family's runs of `model`.

        Args:
          model: a model name the family registers.
        """
        return self.model_defaults.get(model, self.defaults)

    def for_model(self, model: str) -> "Family":
        """This family with `model`'s defaults as its defaults (e.g. for argfiles).

        Args:
          model: a model name the family registers.
        """
        return dataclasses.replace(self, defaults=self.defaults_for(model))

    @property
    def runners_package(self) -> str:
        """Where the family's runner modules live."""
        return f"{self.package}.runners"

    @property
    def argfiles_package(self) -> str:
        """Where the family's argfile modules live."""
        return f"{self.package}.argfiles"
