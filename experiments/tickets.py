"""A control's ticket: the finished run it controls, and the configuration it trains with.

A control trains like its ticket: by default its configuration is the one the
ticket recorded in its done.json (``ticket_config``), and a setting asked for
that differs from the ticket's is refused unless it is named as an override
(``config_for_control``, ``resolve``). ``experiments.control_runs`` trains the
controls.
"""

import os
from typing import Any, Iterable, Mapping, Optional

from lottery_ticket.experiments import build
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore


def ticket_run(masks: save_restore.NetworkLike) -> Optional[str]:
    """The run directory a masks directory belongs to, if it is a complete run.

    Args:
      masks: a masks argument (only a directory can belong to a run).
    """
    if not isinstance(masks, (str, os.PathLike)):
        return None
    run = os.path.dirname(os.path.abspath(os.fspath(masks)).rstrip(os.sep))
    return run if runs.is_complete(run) else None


def ticket_config(ticket_directory: str) -> ExperimentConfig:
    """The configuration a complete run recorded in its done.json (any format).

    Settings the run does not record (it predates them) take the dataclasses'
    defaults, as when comparing runs; a location it does not record is ''.

    Args:
      ticket_directory: the complete run's directory.

    Raises:
      FileNotFoundError: the run is not complete.
      ValueError: its done.json records no configuration, or a bad one.
    """
    run_info = runs.read_done(ticket_directory).get("run_info", {})
    recorded = run_info.get("config") if isinstance(run_info, Mapping) else None
    if not isinstance(recorded, Mapping):
        raise ValueError(f"{ticket_directory} records no configuration in its "
                         f"{runs.DONE_FILENAME}; pass the settings explicitly.")
    values = dict(recorded)
    if "prune_percents" in run_info:  # format 1 kept it beside the configuration
        values["prune_percents"] = run_info["prune_percents"]
    try:
        return ExperimentConfig.from_json(values, ExperimentConfig().replace(data_location=""))
    except ValueError as error:
        raise ValueError(f"the configuration recorded in {ticket_directory}: {error}") \
            from error


def _check_override(override: Iterable[str]) -> set:
    override = set(override)
    fields = ExperimentConfig.fields()
    for name in sorted(override - set(fields) - {"data"}):
        raise ValueError(f"--override names {config_lib.unknown_setting_message(name, fields)}")
    return override


def check_like_ticket(config: ExperimentConfig, ticket: ExperimentConfig,
                      override: Iterable[str] = (), ticket_directory: str = "the ticket"
                      ) -> None:
    """Checks that a control's configuration is its ticket's.

    Raises ValueError if `config` differs from the ticket's in a setting that
    changes results and that `override` does not name: a control trains like its
    ticket unless told otherwise.

    Args:
      config: the control's configuration.
      ticket: the ticket's configuration.
      override: settings that may differ.
      ticket_directory: how the message names the ticket.

    Raises:
      ValueError: naming each setting that differs from the ticket's.
    """
    free = set(ExperimentConfig.non_identity_fields()) | _check_override(override)
    conflicts = [name for name in ExperimentConfig.fields()
                 if name not in free and config[name] != ticket[name]]
    if conflicts:
        details = "; ".join(f"--{name}: ticket {ticket[name]!r}, asked {config[name]!r}"
                            for name in conflicts)
        raise ValueError(
            f"a control trains like its ticket, but {details} (ticket: "
            f"{ticket_directory}). Leave the setting out to use the ticket's value, or "
            f"pass --override={','.join(conflicts)} to train the control differently.")


def config_for_control(ticket: ExperimentConfig, given: Mapping[str, Any],
                       override: Iterable[str] = (), ticket_directory: str = "the ticket"
                       ) -> ExperimentConfig:
    """The ticket's configuration with the settings given explicitly.

    Settings are given as flag name -> value; a given setting that differs is refused unless
    `override` names it (see check_like_ticket).

    Args:
      ticket: the ticket's configuration.
      given: the settings given explicitly, flag name -> value.
      override: settings that may differ from the ticket's.
      ticket_directory: how the message names the ticket.
    """
    config = ticket.replace(**given)
    check_like_ticket(config, ticket, override, ticket_directory)
    return config


def resolve(masks: save_restore.NetworkLike, config: Optional[ExperimentConfig] = None,
            override: Iterable[str] = ()) -> ExperimentConfig:
    """A control's configuration, checked against its ticket's.

    The ticket is the complete run holding `masks` (a masks/ directory). With
    a ticket, `config` defaults to the ticket's configuration, and a given
    `config` may differ from it only in the settings `override` names; the
    data must be the ticket's (same files, by checksum) unless `override`
    names 'data'. Without a ticket (masks given as a dict, say), `config` is
    required.

    Args:
      masks: the control's masks argument (a masks/ directory of a ticket, or a dict).
      config: the configuration given, if any.
      override: settings (or 'data') in which the control may differ from its ticket.

    Raises:
      ValueError: naming each difference, or the missing configuration.
    """
    override = _check_override(override)
    ticket = ticket_run(masks)
    if ticket is None:
        if config is None:
            raise ValueError(
                "no configuration given and the masks are not inside a complete run whose "
                "done.json records one: pass config=..., or the masks/ directory of a "
                "finished lottery run.")
        return config
    recorded = ticket_config(ticket)
    if config is None:
        config = recorded
    check_like_ticket(config, recorded, override, ticket)
    ticket_data = runs.read_done(ticket).get("run_info", {}).get("data")
    if ticket_data is not None and "data" not in override and config["data_location"]:
        asked = build.data_identity(config)
        if asked != ticket_data:
            raise ValueError(
                f"the data at {config['data_location']} is not the data the ticket "
                f"{ticket} trained on (ticket: {ticket_data}, here: {asked}); point "
                "--data_location at the ticket's data, or pass --override=data.")
    return config
