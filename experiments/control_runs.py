"""The control experiments of section 2.2, from a ticket and a configuration.

Each control turns a ticket's (masks, initial weights) into its own with a
numpy transform from ``foundations.controls`` and trains them through
``single_run.train``:

| control | masks | initial values |
| --- | --- | --- |
| reinit | the ticket's | a fresh draw from the model's initializer |
| reuse | the ticket's | sampled from the ticket's initial values, per layer |
| reuse_sign | the ticket's | as reuse, keeping the sign at each position |
| rearrange | same count per layer, random positions | the ticket's values, moved |
| random_prune | same count per layer, random positions | the level-0 initialization |

A control trains like its ticket: by default its configuration is the one the
ticket recorded in its done.json, and a setting asked for that differs from the
ticket's is refused unless it is named as an override (``experiments.tickets``:
``ticket_config``, ``config_for_control``, ``resolve``).

``run_controls`` trains several runs of one control (the paper's three per
ticket and level, one seed each) together as a population
(``foundations.population.train_population``): each run gets the model, the
recorded run_info and the files its single control run would have, and a run
already complete is read back, as rerunning the single control would.
"""

import contextlib
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from lottery_ticket.experiments import build
from lottery_ticket.experiments import kinds
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import lockstep
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
# A control's configuration, from its ticket's (importable from here, their old home).
from lottery_ticket.experiments.tickets import (  # noqa: F401
    check_like_ticket, config_for_control, resolve, ticket_config, ticket_run)
from lottery_ticket.foundations import controls
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import population
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")

REINITIALIZE_MODES = controls.REINITIALIZE_MODES
# The controls by their run directories' name: reinitialize's modes, then the others
# (the control kinds of experiments.kinds).
CONTROLS = kinds.control_names()


def ticket_masks(masks: save_restore.NetworkLike) -> Network:
    """A ticket's masks, checked: 0/1 values, and every layer keeps a weight.

    Args:
      masks: the ticket's masks (a dict or a masks/ directory).

    Raises:
      ValueError: a mask holds values other than 0 and 1, or keeps no weight.
    """
    values = save_restore.standardize(masks)
    for layer, mask in values.items():
        mask = np.asarray(mask)
        if not np.isin(np.unique(mask), (0, 1)).all():
            raise ValueError(f"the ticket's mask for layer {layer!r} holds values other than "
                             "0 and 1: masks mark surviving weights with 1.")
        if not mask.any():
            raise ValueError(f"the ticket's mask for layer {layer!r} keeps no weight: a "
                             "network with an empty layer cannot learn.")
    return values


def ticket_presets(presets: save_restore.NetworkLike, masks: Network) -> Network:
    """A ticket's initial weights, checked to belong to its masks.

    They must be nonzero at every surviving position (initial weights of another level's run
    are 0 there).

    Args:
      presets: the ticket's initial weights (a dict or an initial/ directory).
      masks: the ticket's checked masks.

    Raises:
      ValueError: the presets are 0 at a surviving position (another level's initial
        weights).
    """
    values = save_restore.standardize(presets)
    for layer, mask in masks.items():
        if layer in values and np.shape(values[layer]) == np.shape(mask):
            zeros = int(np.count_nonzero(np.asarray(values[layer])[np.asarray(mask) != 0] == 0))
            if zeros:
                raise ValueError(
                    f"the presets for layer {layer!r} are 0 at {zeros} positions the "
                    "ticket's mask keeps: they look like another run's initial weights. "
                    "Pass the initial/ of the run whose masks/ you pass.")
    return values


def _check_run_name(control: str, output_dir: str) -> None:
    """Inside a trial, a control's directory is {control}{run_id}: the report reads
    runs by their directory's name, so a reinit run named 'lottery' would be
    counted as a ticket."""
    parent = os.path.basename(os.path.dirname(os.path.abspath(output_dir)))
    name, run_id = paths.split_run_name(os.path.basename(os.path.abspath(output_dir)))
    if parent.isdigit() and name != control:
        raise ValueError(
            f"--output_dir={output_dir} is in a level directory, where the report reads a "
            f"run's kind from its name; a {control} run must be named {control}{{run_id}} "
            f"(e.g. {control}1), not {os.path.basename(os.path.abspath(output_dir))!r}.")


def _rewind_snapshot(masks: save_restore.NetworkLike, config: ExperimentConfig
                     ) -> Optional[Tuple[str, Network]]:
    """(its directory, the snapshot) that a ticket rewound to K > 0 started from:
    level 0's rewind{K}/ in the ticket's trial; None for a ticket not rewound or
    not given as a run's masks/ directory."""
    start = single_run.rewind_start(masks, None, config)
    if start is None:
        return None
    return start, lottery.rewound_weights(os.path.dirname(start), config["rewind_iteration"])


def _with_rewound_biases(presets: Network, snapshot: Optional[Tuple[str, Network]]
                         ) -> Network:
    """The ticket's presets, with the biases its rewound start had where the presets
    lack them (the initial/ of runs made before biases were saved holds kernels only),
    so that a control differs from its ticket only in what it randomizes."""
    if snapshot is None:
        return presets
    biases = {key: value for key, value in snapshot[1].items()
              if not save_restore.is_kernel(key) and key not in presets}
    return dict(presets, **biases)


class _ControlRun(NamedTuple):
    """What one control run trains, before it is trained alone or in a population."""
    control: str
    config: ExperimentConfig
    masks: Network
    presets: Optional[Network]
    seed: int
    sources: Mapping[str, Any]
    train_order_seed: Optional[int]
    model_seed: Optional[int] = None

    @property
    def order_seed(self) -> int:
        return int(self.seed if self.train_order_seed is None else self.train_order_seed)

    @property
    def init_seed(self) -> int:
        return int(self.seed if self.model_seed is None else self.model_seed)

    def extra_run_info(self) -> Dict[str, Any]:
        """The run_info a control adds to single_run.train's."""
        extra = {"control": self.control, "control_seed": int(self.seed)}
        extra.update({key: single_run.source_of(value) for key, value in self.sources.items()})
        return extra


def _control_runs(control: str, masks: save_restore.NetworkLike,
                  presets: save_restore.NetworkLike, seeds: Sequence[int],
                  config: Optional[ExperimentConfig], train_order_seed: Optional[int],
                  override: Iterable[str]) -> List[_ControlRun]:
    """One _ControlRun per seed: the control's configuration (resolved and checked
    once) and each seed's transform of the ticket. The single controls and
    run_controls both go through here, so a population member is built exactly
    as its single run."""
    if control not in CONTROLS:
        raise ValueError(f"control {control!r} is not one of {CONTROLS}.")
    config = resolve(masks, config, override)
    seeds = [int(seed) for seed in seeds]
    if control in REINITIALIZE_MODES:
        mask_values = ticket_masks(masks)
        sources = {"ticket_masks": masks, "ticket_presets": presets}
        if control == "reinit":
            return [_ControlRun(control, config, mask_values, None, seed, sources,
                                train_order_seed, controls.reinit_seed(seed))
                    for seed in seeds]
        if presets is None:
            raise ValueError(f"mode {control!r} samples from the ticket's initial weights: "
                             "pass --presets=DIR (the lottery run's initial/).")
        checked = ticket_presets(presets, mask_values)
        snapshot = _rewind_snapshot(masks, config)
        return [_ControlRun(control, config, mask_values, _with_rewound_biases(
            controls.reuse_presets(mask_values, checked, seed,
                                   keep_sign=control == "reuse_sign"), snapshot),
                            seed, sources, train_order_seed, seed) for seed in seeds]
    if control == "rearrange":
        mask_values = ticket_masks(masks)
        checked = ticket_presets(presets, mask_values)
        snapshot = _rewind_snapshot(masks, config)
        made = []
        for seed in seeds:
            new_masks, new_presets = controls.rearrange(mask_values, checked, seed)
            made.append(_ControlRun(control, config, new_masks,
                                    _with_rewound_biases(new_presets, snapshot), seed,
                                    {"ticket_masks": masks, "ticket_presets": presets},
                                    train_order_seed))
        return made
    single_run.check_rewind_presets(masks, presets, config, "random_prune")
    original = save_restore.standardize(presets)
    mask_values = ticket_masks(masks)
    made = []
    for seed in seeds:
        new_masks = controls.random_masks(mask_values, seed)
        for name, mask in new_masks.items():
            if name in original and np.any(np.asarray(original[name])[mask != 0] == 0):
                raise ValueError(
                    f"presets for layer {name!r} are 0 at positions the random mask keeps: "
                    "they look pruned. Pass the dense level-0 initial weights "
                    "({trial}/0/lottery/initial), not the ticket's.")
        made.append(_ControlRun(control, config, new_masks, original, seed,
                                {"ticket_masks": masks, "original_presets": presets},
                                train_order_seed))
    return made


def _train_control(output_dir: str, run: _ControlRun) -> Tuple[Network, Network]:
    _check_run_name(run.control, output_dir)
    return single_run.train(
        output_dir, run.config, masks=run.masks, presets=run.presets, seed=run.init_seed,
        train_order_seed=run.order_seed, run_info=run.extra_run_info())


def _run_info(run: _ControlRun, data: Mapping[str, Any]) -> Dict[str, Any]:
    """The run_info single_run.train records for `run` (called as _train_control
    calls it), for a population member to record the same and be read back by
    a rerun of the single control (and the other way round)."""
    return single_run.make_run_info(run.config, run.init_seed, run.order_seed, run.masks,
                                    run.presets, data, run.extra_run_info())


def run_controls(control: str, output_dirs: Sequence[str], masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, *, seeds: Sequence[int],
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = (),
                 progress: Progress = None) -> List[Tuple[Network, Network]]:
    """Runs (or reads back) one control run per seed, training them together.

    Run k is the run that the single control (reinitialize with mode
    `control`, rearrange or random_prune) makes with output_dirs[k] and
    seeds[k]: the same transform of the ticket, the same model seed and batch
    order, the same configuration (resolved and checked against the ticket as
    there) and the same run_info, plus ``"population": {"size", "member"}``.
    A run already complete with that run_info is read back (one with another
    run_info is a ValueError, before anything trains), and the others train
    together in one ``foundations.population.train_population`` call, each
    under its run directory's lock (held over all runs from the run_info
    checks to the end). Their files equal the single runs' (masks exactly,
    weights and metrics to float rounding).

    Args:
      control: the runs' name: reinit, reuse, reuse_sign (reinitialize's
        modes), rearrange or random_prune.
      output_dirs: the run directories, one per seed, e.g.
        {trial}/{level}/{control}{run_id} for run_id 1..K.
      masks: as in the single control (reinitialize, rearrange, random_prune), for every
        run.
      presets: as in the single control (reinitialize, rearrange, random_prune), for every
        run.
      config: as in the single control (reinitialize, rearrange, random_prune), for every
        run.
      train_order_seed: as in the single control (reinitialize, rearrange, random_prune),
        for every run.
      override: as in the single control (reinitialize, rearrange, random_prune), for every
        run.
      seeds: each run's control seed (the argfiles use 1000 * trial + run_id).
      progress: as in trainer.train (False: show nothing).

    Returns:
      (initial_weights, final_weights) per run, in seed order.

    Raises:
      ValueError: a bad control or setting, seeds that repeat, seeds and
        directories that do not pair up or a directory used twice, or a
        complete run with another run_info (all before any training).
      runs.LockedError: another process is using one of the run directories.
      population.PopulationDivergedError: some runs diverged (recorded as such;
        the others completed).
    """
    output_dirs = [os.fspath(directory) for directory in output_dirs]
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("run_controls needs at least one seed (one per control run).")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"the seeds {seeds} repeat: each control run needs its own seed "
                         "(a repeated seed would train the same run twice).")
    if len(output_dirs) != len(seeds):
        raise ValueError(f"{len(output_dirs)} output directories for {len(seeds)} seeds: "
                         "give one directory per control run.")
    if len({os.path.abspath(directory) for directory in output_dirs}) != len(output_dirs):
        raise ValueError("two control runs share an output directory: each needs its own.")
    members = _control_runs(control, masks, presets, seeds, config, train_order_seed,
                            override)
    for output_dir in output_dirs:
        _check_run_name(control, output_dir)
    config = members[0].config
    build.check(config)
    data = build.data_identity(config)  # one checksum pass for all the runs
    run_infos = [_run_info(member, data) for member in members]
    results: List[Optional[Tuple[Network, Network]]] = [None] * len(members)
    with contextlib.ExitStack() as locks:
        for output_dir in output_dirs:
            locks.enter_context(runs.lock(output_dir))
        pending = []
        for index, (output_dir, run_info) in enumerate(zip(output_dirs, run_infos)):
            saved = single_run.load_if_complete(output_dir, run_info)
            if saved is None:
                pending.append(index)
            else:
                logger.info("%s is already complete; reading it back.", output_dir)
                results[index] = (saved[0], saved[1])
        if pending:
            _train_together([members[i] for i in pending], [output_dirs[i] for i in pending],
                            [run_infos[i] for i in pending], progress, results, pending)
    return results


def _train_together(members: Sequence[_ControlRun], output_dirs: Sequence[str],
                    run_infos: Sequence[Mapping[str, Any]], progress: Progress,
                    results: List, indices: Sequence[int]) -> None:
    """Trains `members` as one population, as single_run.train_model trains each,
    storing each one's TrainResult at its index in `results`."""
    config = members[0].config
    datasets = lockstep.datasets(config, [member.order_seed for member in members])
    models = []
    for member, dataset in zip(members, datasets):
        model = build.model(config, member.presets, member.masks, seed=member.init_seed)
        build.check_fit(config, dataset, model, member.masks, member.presets)
        models.append(model)
    arguments = single_run.training_arguments(config, population=True)
    trained = population.train_population(
        datasets, models, arguments.pop("optimizer_fn"), arguments.pop("training_len"),
        output_dirs, run_infos=run_infos, progress=progress,
        progress_label=f"{members[0].control} | {len(members)} runs | ", **arguments)
    for index, result in zip(indices, trained):
        results[index] = result


def reinitialize(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike = None, mode: str = "reinit",
                 seed: int = 0, config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains the ticket's masks from a random initialization.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/reinit1.
      masks: the ticket's masks (dict or directory, e.g. .../lottery/masks).
      presets: the ticket's initial weights (.../lottery/initial); needed by
        reuse and reuse_sign.
      mode: reinit (a fresh draw; its model seed comes from
        controls.reinit_seed so it never repeats a lottery seed), reuse or
        reuse_sign.
      seed: the control's seed; other seeds give other initializations.
      config: the configuration; default the ticket's (read from the run
        that holds `masks`). It may differ from the ticket's only in the
        settings `override` names (see resolve).
      train_order_seed: batch order; default `seed`.
      override: settings (or 'data') in which the control may differ from
        its ticket.

    Returns:
      (initial_weights, final_weights).

    Raises:
      ValueError: an unknown `mode`, masks or presets that do not fit the ticket, or a
        configuration that differs from the ticket's (see resolve).
    """
    if mode not in REINITIALIZE_MODES:
        raise ValueError(f"mode {mode!r} is not one of {REINITIALIZE_MODES}.")
    (run,) = _control_runs(mode, masks, presets, [seed], config, train_order_seed, override)
    return _train_control(output_dir, run)


def rearrange(output_dir: str, masks: save_restore.NetworkLike,
              presets: save_restore.NetworkLike, seed: int = 0,
              config: Optional[ExperimentConfig] = None,
              train_order_seed: Optional[int] = None, override: Iterable[str] = ()
              ) -> Tuple[Network, Network]:
    """Trains the ticket's initial values moved to random positions in each layer.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/rearrange1.
      masks: the ticket's masks (dict or directory, e.g. .../lottery/masks).
      presets: the ticket's initial weights (.../lottery/initial).
      seed: the control's seed; other seeds give other arrangements.
      config: the configuration; default the ticket's (see reinitialize).
      train_order_seed: batch order; default `seed`.
      override: settings (or 'data') in which the control may differ from
        its ticket.

    Returns:
      (initial_weights, final_weights).
    """
    (run,) = _control_runs("rearrange", masks, presets, [seed], config, train_order_seed,
                           override)
    return _train_control(output_dir, run)


def random_prune(output_dir: str, masks: save_restore.NetworkLike,
                 presets: save_restore.NetworkLike, seed: int = 0,
                 config: Optional[ExperimentConfig] = None,
                 train_order_seed: Optional[int] = None, override: Iterable[str] = ()
                 ) -> Tuple[Network, Network]:
    """Trains random masks of the ticket's per-layer size from the original init.

    Args:
      output_dir: the run directory, e.g. {trial}/{level}/random_prune1.
      masks: the ticket's masks, read only for their per-layer counts.
      presets: the dense level-0 initial weights ({trial}/0/lottery/initial).
      seed: the control's seed; other seeds give other masks.
      config: the configuration; default the ticket's (see reinitialize).
      train_order_seed: batch order; default `seed`.
      override: settings (or 'data') in which the control may differ from
        its ticket.

    Returns:
      (initial_weights, final_weights).

    Raises:
      ValueError: `presets` has zeros where the random mask keeps weights,
        i.e. masked initial weights were passed instead of the level-0 ones.
    """
    (run,) = _control_runs("random_prune", masks, presets, [seed], config,
                           train_order_seed, override)
    return _train_control(output_dir, run)


CONTROL_FUNCTIONS = {"reinitialize": reinitialize, "rearrange": rearrange,
                     "random_prune": random_prune}
