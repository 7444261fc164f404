"""Training one network from an ExperimentConfig, with its provenance recorded.

``train`` is what every run of every family goes through: a lottery level, a
control, or a single run from the command line. It reads back a complete run
made with the same settings instead of retraining it, refuses one made with
other settings, and otherwise trains and writes the run directory.
"""

import logging
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from lottery_ticket.experiments import build
from lottery_ticket.experiments import config as config_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.progress import Progress
from lottery_ticket.foundations.save_restore import Network

logger = logging.getLogger("lottery_ticket")



def source_of(network: save_restore.NetworkLike) -> Optional[str]:
    """How a masks/presets argument is recorded: its absolute path, 'dict' or None.

    Args:
      network: a masks or presets argument: None, a dict, or a saved directory.
    """
    if network is None:
        return None
    if isinstance(network, (str, os.PathLike)):
        return os.path.abspath(os.fspath(network))
    return "dict"


def rewind_start(masks: save_restore.NetworkLike, presets: save_restore.NetworkLike,
                 config: ExperimentConfig) -> Optional[str]:
    """The directory a run rewound to K > 0 starts from, or None.

    Where the run's arguments name a trial: level 0's rewind{K}/ in the trial of the ticket
    whose masks/ are given, else in the trial whose level-0 initial/ is given as presets.
    None when K is 0 or neither names a complete run of a trial.

    Args:
      masks: the run's masks argument (a dict or a saved directory).
      presets: the run's presets argument (a dict or a saved directory).
      config: the experiment's configuration (its rewind_iteration).
    """
    rewind = config["rewind_iteration"]
    if not rewind:
        return None
    for network, level0_only in ((masks, False), (presets, True)):
        if not isinstance(network, (str, os.PathLike)):
            continue
        directory = os.path.abspath(os.fspath(network)).rstrip(os.sep)
        run = os.path.dirname(directory)
        level = os.path.dirname(run)
        if level0_only and (os.path.basename(directory) != "initial"
                            or os.path.basename(level) != "0"):
            continue
        if runs.is_complete(run):
            name, _ = paths.split_run_name(os.path.basename(run))
            return paths.rewind(paths.run(os.path.dirname(level), 0, name), rewind)
    return None


def check_rewind_presets(masks: save_restore.NetworkLike, presets: save_restore.NetworkLike,
                         config: ExperimentConfig, what: str) -> None:
    """Refuses presets that do not match the rewind snapshot a run starts from.

    Refuses presets given as a directory other than the rewind snapshot a run
    rewound to K > 0 starts from (rewind_start): training iterations K..N from
    the iteration-0 weights is neither a rewound ticket nor a reset one.

    Args:
      what: who starts there, for the message ('train', 'random_prune').
      masks: the run's masks argument (a dict or a saved directory).
      presets: the run's presets argument (a dict or a saved directory).
      config: the experiment's configuration (its rewind_iteration).

    Raises:
      ValueError: naming the snapshot to pass instead.
    """
    start = rewind_start(masks, presets, config)
    if start is not None and isinstance(presets, (str, os.PathLike)) and (
            os.path.abspath(os.fspath(presets)).rstrip(os.sep) != os.path.abspath(start)):
        raise ValueError(
            f"the run is rewound to iteration {config['rewind_iteration']} (late resetting, "
            f"--rewind_iteration), so {what} starts from level 0's weights at that iteration, "
            f"not its initial ones: pass --presets={start}, not {presets}.")


def load_if_complete(output_dir: str, run_info: Mapping[str, Any],
                     with_metrics: bool = False) -> Optional[Tuple]:
    """The networks of a complete run made with `run_info`, or None.

    (initial, final, masks) of a complete run made with `run_info`, and its
    metrics (from metrics.json) if `with_metrics`; None if the run is not
    complete; ValueError naming each setting that differs.

    Args:
      output_dir: the run directory.
      run_info: the run_info the run would record (compared with the saved one).
      with_metrics: also return the run's metrics.
    """
    # Lottery runs before format 2 recorded no presets: they were made without.
    defaults = dict(ExperimentConfig().identity_defaults(), presets=None)
    if "data" in run_info:
        # Runs made before the data was recorded cannot be checked against it.
        defaults["data"] = run_info["data"]
    saved = runs.load_complete_run(output_dir, run_info, defaults,
                                   ignore=config_lib.identity_ignore())
    if saved is None or not with_metrics:
        return saved
    return saved + (save_restore.read_json(paths.metrics(output_dir)),)


def training_arguments(config: ExperimentConfig, *, level: Optional[int] = None,
                       population: bool = False) -> Dict[str, Any]:
    """The keyword arguments of trainer.train that a configuration sets.

    Every run trains through here (a single run, a control, a lottery level,
    a population of them), so the configuration means the same everywhere:
    the optimizer, length, evaluation intervals, where training starts and
    which weights it snapshots (rewind), and XLA.

    Args:
      config: the run's configuration.
      level: the lottery level the run is, or None for a run that is not a
        level (a single run, a control). Level 0 trains from iteration 0 and,
        with rewind_iteration K > 0, saves its weights at K (rewind{K}/);
        every other run trains from K to the end, as a rewound level does.
      population: arguments for population.train_population instead: its
        jit_compile in place of xla ('on' True, 'off' False, 'auto' None,
        which lets the population choose per path), sparse_below (the
        population takes the smaller of it and its own threshold) and no
        overlap_evaluation (populations evaluate in place).

    Returns:
      optimizer_fn, training_len, test_interval, validate_interval,
      start_iteration, snapshot_iterations, sparse_below, and xla and
      overlap_evaluation (or jit_compile), by keyword.
    """
    rewind = config["rewind_iteration"]
    validate = config["validate_interval"] if config["validation_size"] else None
    start = 0 if level == 0 else rewind
    arguments: Dict[str, Any] = dict(
        optimizer_fn=build.optimizer_fn(config, start), training_len=config["training_len"],
        test_interval=config["test_interval"] or None, validate_interval=validate or None,
        start_iteration=start,
        snapshot_iterations=(rewind,) if level == 0 and rewind else ())
    if population:
        arguments["jit_compile"] = {"on": True, "off": False}.get(config["xla"])
        arguments["sparse_below"] = config["sparse_below"]
    else:
        arguments.update(xla=config["xla"], sparse_below=config["sparse_below"],
                         overlap_evaluation=config["overlap_evaluation"])
    return arguments


def train_model(dataset: DatasetBase, model: ModelBase, output_dir: str,
                config: ExperimentConfig, run_info: Mapping[str, Any],
                progress_label: str = "", iterations_after: int = 0,
                progress: Progress = None, level: Optional[int] = None
                ) -> trainer.TrainResult:
    """Trains a model as the configuration says (see training_arguments).

    Args:
      level: the lottery level the run is (level 0 trains from iteration 0
        and saves the rewind snapshot, if any); None for a run that is not
        a level, which trains from the configured rewind_iteration.
      dataset: the data set.
      model: the model to train.
      output_dir: the run directory.
      config: the experiment's configuration.
      run_info: what done.json records of the run (see make_run_info).
      progress_label: as in trainer.train.
      iterations_after: as in trainer.train.
      progress: as in trainer.train.

    Returns:
      trainer.train's TrainResult (which unpacks as (initial, final)).
    """
    arguments = training_arguments(config, level=level)
    return trainer.train(
        dataset, model, arguments.pop("optimizer_fn"), arguments.pop("training_len"),
        output_dir, run_info=run_info, progress=progress, progress_label=progress_label,
        iterations_after=iterations_after, **arguments)


def make_run_info(config: ExperimentConfig, seed: int, train_order_seed: int,
                  masks: save_restore.NetworkLike, presets: save_restore.NetworkLike,
                  data: Mapping[str, Any], extra: Optional[Mapping[str, Any]] = None
                  ) -> Dict[str, Any]:
    """The run_info `train` records for a run, with the `extra` facts a caller adds.

    It is the run's identity: a saved run is compared on it.

    Args:
      config: the experiment's configuration.
      seed: the model's seed.
      train_order_seed: the seed of the training-batch order.
      masks: the run's masks argument (recorded by source_of).
      presets: the run's presets argument (recorded by source_of).
      data: what identifies the data (build.data_identity).
      extra: further facts the caller adds (level, trial, ...).
    """
    run_info = {"config": config.to_json(), "seed": int(seed),
                "train_order_seed": int(train_order_seed), "masks": source_of(masks),
                "presets": source_of(presets), "data": data}
    run_info.update(extra or {})
    return run_info


def train(output_dir: str, config: ExperimentConfig,
          masks: save_restore.NetworkLike = None, presets: save_restore.NetworkLike = None,
          seed: int = 0, train_order_seed: Optional[int] = None,
          model_seed: Optional[int] = None, run_info: Optional[Mapping[str, Any]] = None,
          progress: Progress = None) -> Tuple[Network, Network]:
    """Trains one network and writes its run directory, unless it is complete.

    A configured rewind_iteration K > 0 trains from iteration K to the end,
    as a rewound level of a trial does (a control trains like its ticket):
    pass the rewound weights as presets (e.g. {trial}/0/lottery/rewind{K}).

    Args:
      output_dir: the run directory (initial/, final/, masks/, metrics.json,
        summaries/, done.json). A complete run made with the same settings is
        read back instead of retrained; one made with other settings is a
        ValueError naming them.
      config: the experiment configuration (data, model, training).
      masks: dicts or saved directories (see save_restore.standardize).
      presets: dicts or saved directories (see save_restore.standardize).
      seed: the run's seed: seeds layers without presets (unless model_seed
        is given) and the batch order (unless train_order_seed is given).
      train_order_seed: seeds the batch order; default `seed`.
      model_seed: seeds layers without presets; default `seed`.
      run_info: extra facts recorded in done.json and compared on reuse.
      progress: as in trainer.train (False: show nothing).

    Returns:
      The pair (initial_weights, final_weights), a trainer.TrainResult with
      the run's metrics when it was trained now.

    Raises:
      ValueError: a setting, the masks or presets (a layer missing, or not
        the rewind snapshot a rewound run starts from) or the data (labels the
        model cannot output) do not fit, before any work.
      runs.LockedError: another process is using `output_dir`.
      runs.DivergedError: training diverged; the run is recorded as such.
    """
    build.check(config)
    check_rewind_presets(masks, presets, config, "train")
    order_seed = int(seed if train_order_seed is None else train_order_seed)
    run_info = make_run_info(config, seed, order_seed, masks, presets,
                             build.data_identity(config), run_info)
    with runs.lock(output_dir):
        saved = load_if_complete(output_dir, run_info)
        if saved is not None:
            logger.info("%s is already complete; reading it back.", output_dir)
            return saved[0], saved[1]
        dataset = build.dataset(config, order_seed)
        mask_values = save_restore.standardize(masks)
        preset_values = save_restore.standardize(presets)
        model = build.model(config, preset_values, mask_values,
                            seed=int(seed if model_seed is None else model_seed))
        build.check_fit(config, dataset, model, mask_values, preset_values)
        return train_model(dataset, model, output_dir, config, run_info, progress=progress)
