"""Training networks and recording everything about each run: the public entry points.

* `train` trains one network (K = 1) and writes its run directory;
* `train_population` trains K networks of one architecture together in one
  compiled program and writes K run directories, each as `train` would;
* `evaluate` gives a model's loss and accuracy on a split, without training.

Both trainings are one loop (`training.loop.train_members`) over an engine:
`training.single` (the compiled steps of one network, reused by later runs of
the same computation) or `training.stacked` (a population's stacked
weights). The pieces live in the `training` package; this module re-exports
the names callers use (`prepare_run`, `CompiledSteps`, `compiled_steps`,
`finish_steps`, `resolve_xla`, `TrainResult`, ...).
"""

import functools
import inspect
import os
from typing import Any, Callable, List, Mapping, Optional, Sequence, Union

import numpy as np

from lottery_ticket.foundations import progress as progress_lib
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.training import members as members_lib
from lottery_ticket.foundations.training import single
from lottery_ticket.foundations.training import stacked
from lottery_ticket.foundations.training.evaluation import evaluate
from lottery_ticket.foundations.training.loop import prepare_run, train_members
from lottery_ticket.foundations.training.members import PopulationDivergedError
from lottery_ticket.foundations.training.record import TrainResult
from lottery_ticket.foundations.training.overlap import (OVERLAP_AUTO_VARIABLE,
                                                         OVERLAP_CHOICES, resolve_overlap)
from lottery_ticket.foundations.training.schedule import check_iterations, training_iterations
from lottery_ticket.foundations.training.single import (CompiledSteps, compiled_steps,
                                                        finish_steps)
from lottery_ticket.foundations.training.sparse import SPARSE_BELOW, sparse_layout
from lottery_ticket.foundations.training.xla import (XLA_AUTO_VARIABLE, XLA_CHOICES,
                                                     gpu_present, resolve_xla)

__all__ = ["CompiledSteps", "DivergedError", "OVERLAP_AUTO_VARIABLE", "OVERLAP_CHOICES",
           "PopulationDivergedError", "SPARSE_BELOW", "TrainResult", "XLA_AUTO_VARIABLE",
           "XLA_CHOICES", "check_iterations",
           "compiled_steps", "evaluate", "finish_steps", "gpu_present", "prepare_run",
           "resolve_overlap", "resolve_xla", "sparse_layout", "train", "train_population",
           "training_iterations"]

ProgressFn = progress_lib.ProgressFn

# Raised by train(); defined beside the run records so that command lines need
# not import TensorFlow to recognize it.
DivergedError = runs.DivergedError


# What a run writes besides its weights (metrics.json, summaries, done.json), at most.
_RECORD_BYTES = 1_000_000


def run_bytes(model: ModelBase, snapshots: int = 0, save_network: bool = True
              ) -> Optional[int]:
    """About how many bytes a run of `model` writes.

    initial/ and final/ (kernels and biases), masks/ (kernels), each rewind snapshot and its
    records.

    Args:
      model: the model the run trains (built).
      snapshots: how many rewind snapshots the run keeps.
      save_network: whether the run saves initial/, final/ and masks/.

    Returns:
      The bytes, or None if the model is not built yet.
    """
    try:
        kernels = sum(int(np.prod(v.shape)) * v.dtype.size
                      for v in model.kernel_variables.values())
        biases = sum(int(np.prod(v.shape)) * v.dtype.size
                     for v in model.bias_variables.values())
    except RuntimeError:  # not built
        return None
    weights = ((2 + snapshots) * (kernels + biases) + kernels) if save_network else 0
    return weights + _RECORD_BYTES


def reports_disk_need(function: Callable) -> Callable:
    """Decorates a training function so a full disk says what its runs need.

    Makes a full disk during `function` (train, or a population's) a
    DiskFullError that says how many bytes its runs need: the sum of run_bytes
    over its `model` or `models`, with its snapshot_iterations and save_network.

    Args:
      function: train or train_population (takes `model` or `models`).

    Returns:
      The wrapped function.
    """
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        arguments = signature.bind(*args, **kwargs)
        arguments.apply_defaults()
        given = arguments.arguments

        def needed() -> Optional[int]:
            models = given["models"] if "models" in given else [given["model"]]
            sizes = [run_bytes(model, len(given["snapshot_iterations"]), given["save_network"])
                     for model in models]
            return None if None in sizes else sum(sizes)

        with save_restore.disk_need(needed):
            return function(*args, **kwargs)
    return wrapper


@reports_disk_need
def train(dataset: DatasetBase, model: ModelBase, optimizer_fn: Callable[[], Any],
          training_len: Sequence, output_dir: str, *,
          save_summaries: bool = True, save_network: bool = True,
          test_interval: Optional[int] = 100, validate_interval: Optional[int] = None,
          train_interval: Optional[int] = None, run_info: Optional[Mapping] = None,
          progress: progress_lib.Progress = None, progress_label: str = "",
          iterations_after: int = 0, start_iteration: int = 0,
          snapshot_iterations: Sequence[int] = (), xla: Any = "auto",
          sparse_below: float = SPARSE_BELOW,
          overlap_evaluation: Any = "auto") -> TrainResult:
    """Trains `model` on `dataset` and writes the run to `output_dir`.

    Args:
      dataset: the data; its training batches follow its seeded order.
      model: a ModelBase (built here if it has not been called yet).
      optimizer_fn: makes the optimizer, e.g.
        functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1).
      training_len: ('iterations', N) or ('epochs', N).
      output_dir: the run directory. A complete run there is never
        overwritten (FileExistsError); an incomplete one is redone.
      save_summaries: write TensorBoard event files under summaries/.
      save_network: write initial/, final/ and masks/ (one .npy per layer;
        initial/ and final/ also hold each bias as {layer}.bias.npy).
      test_interval: evaluate the whole test split every this many iterations
        (and at iterations 0 and N); None or 0 never (required for a dataset
        without a test split: asking for one is a ValueError).
      validate_interval: the same for the validation split, if the dataset
        has one.
      train_interval: record the mean loss and accuracy of the training
        batches since the last record every this many iterations; None
        records at every test/validate evaluation.
      run_info: JSON-serializable facts about the run (hyperparameters,
        level, trial, ...), written into done.json.
      progress: None (the default) shows a live progress line under the cell
        in a Jupyter kernel and elsewhere logs a line to the 'lottery_ticket'
        logger about every 10 seconds; False shows nothing; a function is
        called as progress(iteration, total, latest_metrics) each time the
        loop returns to Python.
      progress_label: text put before the default progress lines.
      iterations_after: iterations still to come after this run (later
        levels of a trial), for the default progress lines' whole-trial ETA.
      start_iteration: the iteration training starts at (a rewound level
        starts at the rewind iteration K): it trains iterations K..N-1, with
        the dataset's batches of those absolute iterations, evaluates first at
        K and records iterations on the same axis as a run from 0.
      snapshot_iterations: iterations after which the effective kernels and
        biases ('{layer}.bias') are kept (TrainResult.snapshots) and, with
        save_network, saved to rewind{K}/ (paths.rewind), ready to pass as
        presets, before training goes on.
      xla: 'auto' (the default: the training loop compiled with XLA, and
        evaluation too on a GPU), 'on' or 'off'; see resolve_xla. The same
        seeds and setting give the same bits; done.json records it.
      sparse_below: with XLA, dense layers whose masks keep fewer than this
        fraction of their weights train as vectors of their survivors
        (gather, multiply, segment-sum), which is faster on a CPU when very
        sparse; the numbers equal the dense computation's to float rounding.
        0 never does.
      overlap_evaluation: 'auto' (the default), 'on' or 'off': evaluate a copy
        of the weights on a second thread while training goes on (the
        recorded numbers are the same bits; done.json then says
        "overlap_evaluation": true). 'auto' does where TensorFlow's threads leave a core idle (see
        resolve_overlap).

    Returns:
      A TrainResult, which unpacks as (initial_weights, final_weights), dicts layer
      name -> effective kernel; its `metrics` are those of metrics.json and
      its `record` that of done.json. `model` holds the trained values.

    Raises:
      DivergedError: a loss (training, or an evaluated split) or a weight
        became non-finite; the metrics so far and diverged.json are written,
        done.json is not.
      FileExistsError: `output_dir` holds a complete run.
      ValueError: a bad `xla` or `sparse_below`, a bad length, interval, start
        or snapshot iteration, or a loss that does not fit the model's outputs
        (before anything is written).
    """
    resolve_xla(xla)  # a bad setting is refused before anything is written
    overlap = resolve_overlap(overlap_evaluation)
    if not 0.0 <= float(sparse_below) <= 1.0:
        raise ValueError(f"sparse_below is {sparse_below}; it is a fraction of weights in "
                         "[0, 1] (0 turns the sparse layers off).")
    reporter = progress_lib.Reporter(progress, progress_label, iterations_after)

    def make_engine(models: Sequence[ModelBase]) -> single.SingleEngine:
        remaining = training_iterations(training_len, dataset) - start_iteration
        return single.SingleEngine(
            compiled_steps(dataset, models[0], optimizer_fn(), xla, sparse_below,
                           iterations=max(remaining, 1)),
            overlap=overlap)

    result, = train_members(
        [dataset], [model], make_engine, training_len, [output_dir],
        save_summaries=save_summaries, save_network=save_network,
        test_interval=test_interval, validate_interval=validate_interval,
        train_interval=train_interval, run_infos=[run_info], reporter=reporter,
        start_iteration=start_iteration, snapshot_iterations=snapshot_iterations)
    if isinstance(result, DivergedError):
        raise result
    return result


@reports_disk_need
def train_population(datasets: Union[DatasetBase, Sequence[DatasetBase]],
                     models: Sequence[ModelBase], optimizer_fn: Callable[[], Any],
                     training_len: Sequence, output_dirs: Sequence[str], *,
                     save_summaries: bool = True, save_network: bool = True,
                     test_interval: Optional[int] = 100,
                     validate_interval: Optional[int] = None,
                     train_interval: Optional[int] = None,
                     run_infos: Optional[Sequence[Optional[Mapping]]] = None,
                     progress: progress_lib.Progress = None, progress_label: str = "",
                     iterations_after: int = 0, start_iteration: int = 0,
                     snapshot_iterations: Sequence[int] = (),
                     jit_compile: Optional[bool] = None,
                     raise_on_divergence: bool = True,
                     sparse_below: Optional[float] = None
                     ) -> List[Union[TrainResult, DivergedError]]:
    """Trains K networks of one architecture together; writes K run directories.

    Member k trains as ``train(datasets[k], models[k], optimizer_fn,
    training_len, output_dirs[k], ...)`` would (same batches, same masks and
    initial weights, same metrics at the same iterations, same files), up to
    floating-point rounding, with ``"population": {"size": K, "member": k}``
    added to its run_info. Its done.json's ``seconds`` is the population's
    wall time.

    Args:
      datasets: one DatasetBase for all members, or one per member. They must
        hold the same arrays (the same objects, or equal arrays) and batch
        size; they may differ in train_order_seed: each member trains on
        exactly the batches its data set's batch_indices gives.
      models: the members: ModelBase instances of one class with equal
        trace_key() and equal weight shapes (each its own seed, masks,
        presets). Dense models are fast; conv models and dropout work, slowly.
      optimizer_fn: makes the optimizer (called once: one optimizer over the
        stacked weights); an elementwise Keras optimizer (SGD, momentum, Adam,
        ...) without clipnorm/global_clipnorm.
      training_len: ('iterations', N) or ('epochs', N).
      output_dirs: one run directory per member, all different. If any holds
        a complete run, FileExistsError before anything is written;
        incomplete ones are redone.
      save_summaries: as in trainer.train, for every member.
      save_network: as in trainer.train, for every member.
      test_interval: as in trainer.train, for every member.
      validate_interval: as in trainer.train, for every member.
      train_interval: as in trainer.train, for every member.
      progress_label: as in trainer.train, for every member.
      iterations_after: as in trainer.train, for every member.
      start_iteration: as in trainer.train, for every member.
      snapshot_iterations: as in trainer.train, for every member.
      run_infos: per member, the run_info written into its done.json.
      progress: as in trainer.train; a function is called as
        progress(iteration, total, latest) with the mean over the members
        still training of each split's latest loss and accuracy.
      jit_compile: compile the training loop with XLA. None (the default)
        chooses per path: see training.stacked's docstring ("XLA").
      raise_on_divergence: if a member's loss or weights become non-finite,
        it is recorded as diverged exactly as trainer.train records it
        (metrics so far and diverged.json, no done.json) and the others go
        on; at the end, True raises PopulationDivergedError (which holds
        every member's result), False returns the DivergedError in that
        member's place.
      sparse_below: with XLA, a dense layer where every member keeps fewer
        than this fraction of its weights trains as one vector of all
        members' survivors; None (the default) means the populations'
        measured threshold (stacked.SPARSE_BELOW, 3%), a larger value means
        that threshold too, and 0 turns it off (as trainer.train's
        `sparse_below`, whose default 5% a lottery configuration passes on).

    Returns:
      One TrainResult per member (or DivergedError, see
      raise_on_divergence). Each model holds its trained values.

    Raises:
      ValueError: no members, lengths that differ, members of different
        architectures, data sets with different arrays, an optimizer that
        would mix members, or a bad setting (before anything is written).
      FileExistsError: a member's output directory holds a complete run.
      PopulationDivergedError: a member diverged and `raise_on_divergence` is True; it holds
        every member's outcome.
    """
    models = list(models)
    size = len(models)
    if size == 0:
        raise ValueError("a population needs at least one model (got none).")
    if sparse_below is not None and not 0.0 <= float(sparse_below) <= 1.0:
        raise ValueError(f"sparse_below is {sparse_below}; it is a fraction of weights in "
                         "[0, 1] (0 turns the sparse layers off).")
    below = (stacked.SPARSE_BELOW if sparse_below is None
             else min(float(sparse_below), stacked.SPARSE_BELOW))
    if isinstance(datasets, DatasetBase):
        datasets = [datasets] * size
    datasets, output_dirs = list(datasets), [os.fspath(d) for d in output_dirs]
    run_infos = [None] * size if run_infos is None else list(run_infos)
    for name, given in (("datasets", datasets), ("output_dirs", output_dirs),
                        ("run_infos", run_infos)):
        if len(given) != size:
            raise ValueError(f"{len(given)} {name} for {size} models: give one per member.")
    if len({os.path.abspath(d) for d in output_dirs}) != size:
        raise ValueError("two members share an output directory: each member needs its own.")
    members_lib.check_datasets(datasets)
    members_lib.check_models(models, datasets[0].example_shape)
    # A model whose state cannot be stacked (a Keras model's BN statistics) says so.
    refusal = getattr(models[0], "population_refusal", lambda: None)()
    if refusal:
        raise ValueError(refusal)
    optimizer = optimizer_fn()
    members_lib.check_optimizer(optimizer)
    if jit_compile is None:
        # A bad LOTTERY_TICKET_XLA_AUTO is refused here, before any directory is made.
        stacked.population_xla(True)
    complete = [d for d in output_dirs if runs.is_complete(d)]
    if complete:
        raise FileExistsError(
            f"{len(complete)} of the population's output directories already hold a "
            f"complete run ({complete[0]}{', ...' if len(complete) > 1 else ''}); complete "
            "runs are never overwritten. Choose other directories, or delete those runs.")
    reporter = progress_lib.Reporter(progress, progress_label, iterations_after)
    results = train_members(
        datasets, models,
        functools.partial(stacked.stacked_engine, datasets[0], optimizer=optimizer,
                          jit_compile=jit_compile, sparse_below=below,
                          iterations=max(training_iterations(training_len, datasets[0])
                                         - start_iteration, 1)),
        training_len, output_dirs, save_summaries=save_summaries, save_network=save_network,
        test_interval=test_interval, validate_interval=validate_interval,
        train_interval=train_interval, reporter=reporter,
        run_infos=[dict(info or {}, population={"size": size, "member": k})
                   for k, info in enumerate(run_infos)],
        start_iteration=start_iteration, snapshot_iterations=snapshot_iterations)
    if raise_on_divergence and any(isinstance(r, DivergedError) for r in results):
        raise PopulationDivergedError(results)
    return results
