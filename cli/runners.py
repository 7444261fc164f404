"""The generic commands every family's entry points are made of.

Each function takes a ``Family`` and returns a ``flags.Command`` whose flags
are the family's configuration fields (with its defaults) plus the command's
own; a family's runner module is then two lines::

    COMMAND = runners.lottery(constants.FAMILY)
    if __name__ == "__main__":
        COMMAND.run()

or, by the runner's name in the registry of experiment kinds
(experiments.kinds), ``COMMAND, main = runners.entry_point(constants.FAMILY,
"lottery_experiment")``.
"""

import glob
import logging
import os
import shutil
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from lottery_ticket.cli import flags as flags_lib
from lottery_ticket.cli.flags import REQUIRED, Command, Flag
from lottery_ticket.experiments import kinds
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.experiments.family import Family
from lottery_ticket.foundations import paths

logger = logging.getLogger("lottery_ticket")

# --iterations is the original codebase's name for the number of pruning levels.
LEVEL_ALIASES = {"iterations": "levels"}
# Settings of a whole trial, which a single run or a control does not take.
TRIAL_ONLY = ("levels", "pruning", "prune_percents", "prune_scores", "prune_seed")


# Networks whose training step is fastest on one CPU thread (small matrices): with
# one thread, the run's overlapped evaluation (overlap_evaluation=auto) uses a
# second core while training goes on. Measured on a 2-core CPU for a 31-level
# LeNet-300-100 trial: 0.53x the wall time of TensorFlow's default thread count.
ONE_THREAD_MODELS = ("fc",)


def default_threads(model: str, environ: Mapping[str, str], has_gpu: bool,
                    cores: int) -> Optional[int]:
    """The thread count a runner uses when --threads is not given.

    Args:
      model: the configuration's model name (ModelConfig.model).
      environ: the process environment.
      has_gpu: whether TensorFlow sees a GPU.
      cores: the CPU cores this process may use.

    Returns:
      1 for a fully-connected network on a CPU with more than one core, unless
      the environment already sets TensorFlow's thread counts (the batch runner
      does, for each of its workers); None (TensorFlow's choice) otherwise.
    """
    if (model in ONE_THREAD_MODELS and not has_gpu and cores > 1
            and "TF_NUM_INTRAOP_THREADS" not in environ
            and "TF_NUM_INTEROP_THREADS" not in environ):
        return 1
    return None


def configure(threads: Optional[int] = None, model: Optional[str] = None) -> None:
    """Progress lines on stderr, TensorFlow's CPU thread count, deterministic GPU ops.

    Args:
      threads: threads for TensorFlow's CPU kernels; None: `default_threads`
        for `model` (one thread for fully-connected networks on a CPU), else
        TensorFlow's default.
      model: the run's model name, for the default thread count; None keeps
        TensorFlow's default.
    """
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    tf = import_tensorflow_quietly()
    given = threads is not None
    if not given and model is not None:
        from lottery_ticket.foundations.training import overlap
        threads = default_threads(model, os.environ,
                                  bool(tf.config.list_physical_devices("GPU")),
                                  overlap.cores())
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        except RuntimeError:
            # TensorFlow already runs in this process (a runner called from a notebook
            # or a test): a default is only a speed preference, so the threads stay as
            # they are; a --threads the user gave is an error.
            if given:
                raise
    # On a GPU some reductions are nondeterministic unless told otherwise. On a
    # CPU, TensorFlow's default (oneDNN) kernels already give the same bits for
    # the same seeds at any thread count, and switching kernels would make runner
    # results differ from a notebook's, so CPUs are left as they are.
    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.enable_op_determinism()


def _machine_has_gpu() -> bool:
    return bool(glob.glob("/dev/nvidia[0-9]*")) or shutil.which("nvidia-smi") is not None


def import_tensorflow_quietly() -> Any:
    """Imports TensorFlow; on a machine without an NVIDIA GPU, without its CUDA-probe noise.

    TensorFlow logs a dozen lines about missing CUDA drivers while importing,
    some before its log level applies; where there is no GPU they say nothing
    useful, so its output is silenced during the import and its C++ log level
    set to errors-only-if-fatal (unless TF_CPP_MIN_LOG_LEVEL is set already).
    """
    if "tensorflow" in sys.modules or _machine_has_gpu():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow
        return tensorflow
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved, quiet = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(quiet)
    return tensorflow


def _threads_flag() -> Flag:
    return Flag("threads", None, "TensorFlow CPU threads (default: 1 for fully-connected "
                "networks on a multi-core CPU, the fastest for them, leaving a core for the "
                "overlapped evaluation; TensorFlow's choice otherwise; the batch runner "
                "gives each worker cores / workers).", Optional[int])


def _check_runner_flags(values: Dict[str, Any]) -> None:
    """The runners' own numeric flags: seeds from 0 up, a positive thread count."""
    for name in ("seed", "train_order_seed"):
        if values.get(name) is not None and values[name] < 0:
            raise ValueError(f"--{name}={values[name]}: seeds are whole numbers from 0 up.")
    threads = values.get("threads")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads={threads}: give a positive number of threads, or "
                         "leave the flag out for TensorFlow's choice.")


def _program(family: Family, module: str) -> str:
    return f"python -m {family.runners_package}.{module}"


def _config_flags(family: Family, exclude=(), default_text=None) -> List[Flag]:
    aliases = dict(family.flag_aliases)
    aliases.update({alias: name for alias, name in LEVEL_ALIASES.items()
                    if name not in exclude})
    # --help names each model's default where --model changes it.
    by_model = {name: "; ".join(f"{model}: {Flag(name, config[name], '').describe_default()}"
                                for model, config in family.model_defaults.items())
                for name in ExperimentConfig.fields() if name != "model"
                and len({repr(c[name]) for c in family.model_defaults.values()}) > 1}
    default_text = dict(by_model, **(default_text or {}))
    return flags_lib.config_flags(family.defaults, aliases, exclude, default_text)


def _config(family: Family, values: Dict[str, Any], given: Set[str]) -> ExperimentConfig:
    """The given flags over the family's defaults for the chosen --model (a family
    whose models have their own learning rates, lengths... sets model_defaults)."""
    return flags_lib.config_from(values, family.defaults_for(values["model"]), only=given)


def _remaining_lines(results) -> List[str]:
    from lottery_ticket.experiments.lottery import remaining_fraction
    return [f"level {level}: {100 * remaining_fraction(result.masks):6.2f}% of weights remain"
            for level, result in results.items()]


def lottery(family: Family, module: str = "lottery_experiment") -> Command:
    """Runs or resumes one trial of the lottery ticket experiment."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        _check_runner_flags(values)
        config = _config(family, values, given)
        output_dir = values["output_dir"]
        if output_dir is None:
            output_dir = paths.trial(family.experiment_root, values["seed"])
        elif not output_dir.strip():
            raise ValueError("--output_dir is empty: give the trial directory, or leave "
                             "the flag out for the default.")
        population = values["population"]
        if population < 1:
            raise ValueError(f"--population={population}: give the number of trials to "
                             "train together (1: this trial alone).")
        seeds = list(range(values["seed"], values["seed"] + population))
        if population > 1:
            if values["output_dir"] is None:
                output_dir = paths.trial(family.experiment_root, "{seed}")
            if "{seed}" not in output_dir:
                raise ValueError(
                    f"--population={population} trains {population} trials (seeds "
                    f"{seeds[0]} to {seeds[-1]}), each in its own directory: put {{seed}} in "
                    f"--output_dir (e.g. --output_dir={output_dir.rstrip('/')}/trial{{seed}}).")
        trial_dirs = [output_dir.replace("{seed}", str(seed)) for seed in seeds]
        configure(values["threads"], config["model"])
        if population == 1:
            from lottery_ticket.experiments import lottery as lottery_lib  # After configure().
            results = {trial_dirs[0]: lottery_lib.run_trial(
                trial_dirs[0], config, seeds[0], values["presets"], values["experiment_name"])}
        else:
            from lottery_ticket.experiments import lockstep
            results = dict(zip(trial_dirs, lockstep.run_trials(
                trial_dirs, config, seeds, presets=values["presets"],
                experiment_name=values["experiment_name"])))
        for trial_dir, levels in results.items():
            print(f"trial directory: {trial_dir}")
            print("\n".join(_remaining_lines(levels)))

    own = [
        Flag("output_dir", None, "The trial directory; rerunning resumes it.", Optional[str],
             default_text=f"{family.experiment_root}/trial{{seed}}"),
        Flag("seed", 0, "Seeds the level-0 initialization and the batch order.", int),
        Flag("population", 1, "Trials trained together, level by level, in one compiled "
             "program: seeds --seed to --seed+K-1, each with the files a trial of its own "
             "would have; --output_dir then holds {seed} (default: the family's "
             "trial{seed}). Faster per trial for small networks and on a GPU.", int),
        Flag("experiment_name", kinds.LOTTERY.run_names[0], "Name of the run directories "
             "in each level.", str),
        Flag("presets", None, "Directory of level-0 initial weights ({layer}.npy).",
             Optional[str]),
        _threads_flag(),
    ]
    return Command(_program(family, module),
                   "Runs or resumes one trial of the lottery ticket experiment: train, "
                   "prune, reset the survivors to their initial values, repeat. Completed "
                   "levels are read back, not retrained; a larger --levels extends a trial.",
                   own + _config_flags(family), run)


def _oneshot_place(output_dir: str, experiment_name: str, what: str = "one-shot") -> tuple:
    """(trial directory, level) of a one-shot (or `what`) run directory
    {trial}/{level}/{name}."""
    run = os.path.abspath(output_dir)
    level = os.path.basename(os.path.dirname(run))
    if (os.path.basename(run) != experiment_name or not level.isdigit()
            or int(level) < 1):
        raise ValueError(
            f"--output_dir={output_dir} is not a {what} run directory: it must be "
            f"{{trial}}/{{level}}/{experiment_name} with a level >= 1 (e.g. "
            f"results/lottery/trial1/3/{experiment_name}), since the report reads a run's "
            "level and kind from its path.")
    return os.path.dirname(os.path.dirname(run)), int(level)


def oneshot(family: Family, module: str = "oneshot") -> Command:
    """Prunes a trial's trained level 0 straight to one level's weights remaining."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        _check_runner_flags(values)
        config = _config(family, values, given)
        trial_dir, level = _oneshot_place(values["output_dir"], values["experiment_name"])
        configure(values["threads"], config["model"])
        from lottery_ticket.experiments import lottery as lottery_lib  # After configure().
        from lottery_ticket.experiments import oneshot as oneshot_lib
        results = oneshot_lib.run_oneshot(trial_dir, config, [level], values["seed"],
                                          values["presets"], values["lottery_name"],
                                          values["experiment_name"])
        print(f"run directory: {paths.run(trial_dir, level, values['experiment_name'])}")
        print(f"level {level}: {100 * lottery_lib.remaining_fraction(results[level].masks):6.2f}"
              "% of weights remain")

    own = [
        Flag("output_dir", REQUIRED, "The one-shot run directory, {trial}/{level}/oneshot: "
             "level 0 of {trial} is read back, or trained there first if missing.", str),
        Flag("seed", 0, "The trial's seed (its level 0's).", int),
        Flag("experiment_name", kinds.ONESHOT.run_names[0], "Name of the one-shot run "
             "directories.", str),
        Flag("lottery_name", kinds.LOTTERY.run_names[0], "Name of the trial's runs "
             "({trial}/0/{name} is its level 0).", str),
        Flag("presets", None, "Directory of level-0 initial weights, if the trial had them.",
             Optional[str]),
        _threads_flag(),
    ]
    return Command(_program(family, module),
                   "One-shot pruning: from a trial's trained level 0, prunes straight to the "
                   "weights iterative pruning keeps at the level of --output_dir, resets "
                   "the survivors (to iteration 0, or --rewind_iteration) and trains. "
                   "Rerunning reads a finished run back.",
                   own + _config_flags(family, exclude=("levels",)), run)


def prune_at_init(family: Family, module: str = "prune_at_init") -> Command:
    """Prunes a trial's fresh initialization with a score, to one level's density, and
    trains it (experiments.prune_at_init)."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        _check_runner_flags(values)
        config = _config(family, values, given)
        from lottery_ticket.experiments import prune_at_init as pai  # pylint: disable=C0415
        name = pai.run_name(config["prune_scores"], values["ablation"])
        trial_dir, level = _oneshot_place(values["output_dir"], name,
                                          f"--prune_scores={config['prune_scores']} "
                                          f"--ablation={values['ablation']}")
        configure(values["threads"], config["model"])
        results = pai.run_prune_at_init(trial_dir, config, [level], values["seed"],
                                        values["ablation"], values["presets"])
        from lottery_ticket.experiments import lottery as lottery_lib  # After configure().
        kept = lottery_lib.remaining_fraction(results[level].masks)
        print(f"run directory: {paths.run(trial_dir, level, name)}")
        print(f"level {level}: {100 * kept:6.2f}% of weights remain")

    own = [
        Flag("output_dir", REQUIRED, "The run directory, {trial}/{level}/prune_at_init_"
             "{score}[_{ablation}]: the level says the density (the lottery level's).", str),
        Flag("seed", 0, "The trial's seed: its level-0 initialization and batch order.", int),
        Flag("ablation", "none", "none, shuffle (the mask shuffled within each layer), "
             "reinit (survivors drawn afresh) or invert (the highest scores pruned).", str),
        Flag("presets", None, "Directory of level-0 initial weights, if the trial had them.",
             Optional[str]),
        _threads_flag(),
    ]
    return Command(_program(family, module),
                   "Pruning at initialization: prunes the trial's freshly initialized "
                   "network with --prune_scores (snip, grasp, synflow, magnitude_at_init, "
                   "random...) to the weights iterative pruning keeps at the level of "
                   "--output_dir, and trains it once. Rerunning reads a finished run back.",
                   own + _config_flags(family, exclude=("levels",)), run)


def train(family: Family, module: str = "train") -> Command:
    """Trains one network, optionally with masks and presets from other runs."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        _check_runner_flags(values)
        config = _config(family, values, given)
        configure(values["threads"], config["model"])
        from lottery_ticket.experiments import single_run  # After configure().
        single_run.train(values["output_dir"], config, masks=values["masks"],
                         presets=values["presets"], seed=values["seed"],
                         train_order_seed=values["train_order_seed"])
        print(f"run directory: {values['output_dir']}")

    own = [
        Flag("output_dir", REQUIRED, "The run directory (never overwritten once "
             "complete).", str),
        Flag("seed", 0, "Seeds the initial weights of layers without presets.", int),
        Flag("train_order_seed", None, "Seeds the batch order (default: --seed).",
             Optional[int]),
        Flag("masks", None, "Directory of {layer}.npy masks (e.g. a run's masks/).",
             Optional[str]),
        Flag("presets", None, "Directory of {layer}.npy initial weights (e.g. a run's "
             "initial/).", Optional[str]),
        _threads_flag(),
    ]
    return Command(_program(family, module), "Trains one network into --output_dir, "
                   "optionally with masks and initial weights from other runs.",
                   own + _config_flags(family, exclude=TRIAL_ONLY), run)


_CONTROL_HELP = {
    "reinitialize": "Trains the ticket's masks from a random initialization: --mode=reinit "
                    "(a fresh draw), reuse (sampled from the ticket's initial values) or "
                    "reuse_sign (reuse, keeping each weight's sign).",
    "rearrange": "Trains the ticket's initial values moved to random positions within "
                 "each layer.",
    "random_prune": "Trains random masks with the ticket's per-layer counts from the "
                    "original (level-0) initialization.",
}


def control_run_dirs(output_dir: str, population: int) -> List[str]:
    """The run directories of a control command: --output_dir alone, or for
    --population=K > 1 the K runs {control}{R}..{control}{R+K-1} from an
    --output_dir named {control}{R} (the first run, where a batch keeps the
    line's log), which pair with seeds --seed..--seed+K-1 as the argfiles'
    1000 * trial + run_id seeds do.

    Raises:
      ValueError: K < 1, or K > 1 with an --output_dir not ending in a run id.
    """
    if population < 1:
        raise ValueError(f"--population={population}: give the number of runs to train "
                         "together (1: this run alone).")
    if population == 1:
        return [output_dir]
    run = output_dir.rstrip("/" + os.sep)
    name, run_id = paths.split_run_name(os.path.basename(run))
    if not name or not run_id or str(int(run_id)) != run_id:
        example = os.path.join(os.path.dirname(run), f"{name or 'reinit'}1")
        raise ValueError(
            f"--population={population} trains {population} runs named by their run id, "
            f"but --output_dir={output_dir} does not end in one (digits, no leading 0): "
            f"give the first run's directory, e.g. --output_dir={example} for runs 1 to "
            f"{population}.")
    return [os.path.join(os.path.dirname(run), f"{name}{int(run_id) + k}")
            for k in range(population)]


def control(family: Family, name: str) -> Command:
    """A control runner: reinitialize, rearrange or random_prune.

    Its configuration is the ticket's, read from the done.json of the run that
    holds --masks; a flag that changes results and differs from the ticket's
    is refused unless --override names it.
    """
    if name not in _CONTROL_HELP:
        raise ValueError(f"no control {name!r}; controls: {sorted(_CONTROL_HELP)}.")

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        _check_runner_flags(values)
        output_dirs = control_run_dirs(values["output_dir"], values["population"])
        configure(values["threads"], family.defaults["model"])
        from lottery_ticket.experiments import control_runs  # After configure().
        fields = ExperimentConfig.fields()
        # Bad values are named first, whatever the ticket.
        flags_lib.config_from(values, family.defaults, only=given & set(fields))
        ticket = control_runs.ticket_run(values["masks"])
        if ticket is None:
            raise ValueError(
                f"--masks={values['masks']} is not the masks/ directory of a complete run "
                "(its parent has no done.json), so there is no ticket to train like. Point "
                "it at a finished lottery run's masks/, or finish that run first.")
        base = control_runs.ticket_config(ticket)
        if not base["data_location"]:  # recorded by runs of format 2 on
            base = base.replace(data_location=family.defaults["data_location"])
        override = [item for item in values["override"].replace(" ", "").split(",") if item]
        config = control_runs.config_for_control(
            base, {key: values[key] for key in given if key in fields}, override, ticket)
        arguments = dict(masks=values["masks"], presets=values["presets"],
                         seed=values["seed"], config=config,
                         train_order_seed=values["train_order_seed"], override=override)
        if name == "reinitialize":
            arguments["mode"] = values["mode"]
        if len(output_dirs) == 1:
            control_runs.CONTROL_FUNCTIONS[name](output_dirs[0], **arguments)
        else:
            kind = arguments.pop("mode", name)  # the runs' name: reinit, ..., rearrange
            seed = arguments.pop("seed")
            control_runs.run_controls(kind, output_dirs,
                                      seeds=range(seed, seed + len(output_dirs)),
                                      **arguments)
        for output_dir in output_dirs:
            print(f"run directory: {output_dir}")

    presets_help = {"reinitialize": "The ticket's initial weights (its initial/); needed "
                                    "by reuse and reuse_sign.",
                    "rearrange": "The ticket's initial weights (its initial/).",
                    "random_prune": "The dense level-0 initial weights "
                                    "({trial}/0/lottery/initial)."}[name]
    own = [
        Flag("output_dir", REQUIRED, "The control's run directory, e.g. "
             "{trial}/{level}/{control}{run_id}.", str),
        Flag("masks", REQUIRED, "The ticket's masks/ directory; the ticket's configuration "
             "is read from the run that holds it.", str),
        Flag("presets", None if name == "reinitialize" else REQUIRED, presets_help,
             Optional[str]),
        Flag("seed", 0, "The control's seed; other seeds draw differently.", int),
        Flag("train_order_seed", None, "Seeds the batch order (default: --seed; the "
             "argfiles pass the trial's seed).", Optional[int]),
        Flag("override", "", "Comma-separated settings that may differ from the "
             "ticket's, e.g. --override=training_len ('data' for other data files).", str),
        Flag("population", 1, "Control runs trained together in one compiled program: "
             "--output_dir names the first, {control}{R}, and the K runs are {control}{R} "
             "to {control}{R+K-1} beside it with seeds --seed to --seed+K-1, each with the "
             "files it would have alone.", int),
        _threads_flag(),
    ]
    if name == "reinitialize":
        own.insert(3, Flag("mode", "reinit", "reinit, reuse or reuse_sign.", str))
    texts = {field: "the ticket's" for field in ExperimentConfig.fields()}
    return Command(_program(family, name), _CONTROL_HELP[name],
                   own + _config_flags(family, exclude=TRIAL_ONLY, default_text=texts), run)


def entry_point(family: Family, runner: str
                ) -> Tuple[Command, Callable[[Optional[Sequence[str]]], None]]:
    """(COMMAND, main) of a family's runner module, by the module's name.

    The runner is an experiment kind's (experiments.kinds: lottery_experiment,
    train, reinitialize, rearrange, random_prune, oneshot, or one registered
    later), the argfile runner, or ``download_data`` (the family's package's
    downloader of its default data set into its default data location), so a
    family's runner module is one line::

        COMMAND, main = runners.entry_point(constants.FAMILY, "oneshot")

    Raises:
      ValueError: no kind has a runner of that name, or the family does not
        offer that kind (Family.kinds).
    """
    if runner == "argfile_runner":
        from lottery_ticket.cli import argfile_runner  # pylint: disable=C0415 (a cycle)
        command = argfile_runner.command(family)
    elif runner == "download_data":
        command = download(family.defaults["data_location"], family.defaults["dataset"],
                           program=f"python -m {family.package}.download_data")
    else:
        kind = kinds.by_runner(runner)
        if kind is None or kind.command is None:
            raise ValueError(f"no experiment kind has a runner named {runner!r}; runners: "
                             f"{', '.join(kinds.runner_names())}, argfile_runner, "
                             "download_data.")
        family.check_offers(kind.name)
        command = kind.command(family)

    def main(argv: Optional[Sequence[str]] = None) -> None:
        """Runs the command line (default sys.argv); --help lists every flag."""
        command.run(argv)

    return command, main


def download(default_location: str, default_dataset: str = "mnist",
             program: str = "python -m lottery_ticket.mnist_fc.download_data") -> Command:
    """Downloads a registered data set, checking every file's published checksum."""

    def run(values: Dict[str, Any], given: Set[str]) -> None:
        download_main(values["location"], values["dataset"], values["base_url"],
                      values["timeout"])

    own = [
        Flag("location", default_location, "Directory to write the files into.", str),
        Flag("dataset", default_dataset, "A registered data set (mnist, fashion_mnist).",
             str),
        Flag("base_url", None, "A mirror to use instead of the public ones.", Optional[str]),
        Flag("timeout", 60.0, "Seconds to wait for each connection.", float),
    ]
    return Command(program, "Downloads a data set's files from its mirrors, checks each "
                   "against its published MD5 and writes it atomically.", own, run)


def download_main(location: str, dataset: str = "mnist", base_url: Optional[str] = None,
                  timeout: float = 60.0) -> None:
    """Downloads, then prints where the files are.

    Raises:
      DownloadError: a file cannot be had intact (one `error:` line and exit
        status 2 under cli.errors.run_cli; the lines after it name each URL).
    """
    from lottery_ticket.datasets import download as download_lib
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    written = download_lib.download(location, dataset, base_url, timeout)
    print("\n".join(written))
