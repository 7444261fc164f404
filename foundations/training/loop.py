"""The one training loop: K >= 1 members over an Engine, from directories to results.

`train_members` prepares each member's run directory, drives an `Engine`
through the iterations (returning to Python at evaluation boundaries to
record metrics, check for divergence, take snapshots and report progress)
and writes each member's results. A single run is K = 1; whatever a member
records (files, metrics, done.json, diverged.json) is what a single run of it
records, because it is the same code.
"""

import concurrent.futures
import copy
import os
import shutil
import time
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union)

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import progress as progress_lib
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network
from lottery_ticket.foundations.training import schedule
from lottery_ticket.foundations.training.engine import Engine
from lottery_ticket.foundations.training.record import (Recorder, TrainResult, divergence,
                                                        mean_latest, write_record)

DivergedError = runs.DivergedError

# Threads that prepare and finish the members' run directories: mostly waiting for
# file syncs, which overlap.
WRITER_THREADS = 8


def clear_snapshots(output_dir: str) -> None:
    """Removes the rewind{K}/ snapshots an interrupted run left.

    A run only clears what it knows it wrote: only in a directory marked as a run of this
    project.

    Args:
      output_dir: the run directory.
    """
    if not os.path.exists(os.path.join(output_dir, runs.MARKER_FILENAME)):
        return
    for name in os.listdir(output_dir):
        if paths.is_rewind(name) and os.path.isdir(os.path.join(output_dir, name)):
            shutil.rmtree(os.path.join(output_dir, name))


def check_loss_fits(model: ModelBase, dataset: DatasetBase) -> None:
    """Checks that the model's loss and accuracy fit its outputs and the labels.

    Raises ValueError before anything is written if the model's loss or accuracy cannot take
    its outputs with the data's labels (a sigmoid model with two outputs for [N] labels,
    say).

    Args:
      model: the model (built by this call if needed).
      dataset: its data set.

    Raises:
      ValueError: naming both shapes.
    """
    y = tf.constant(dataset.train[1][:2])
    outputs = model(dataset.train[0][:2])
    try:
        model.loss(outputs, y)
        model.accuracy(outputs, y)
    except (ValueError, TypeError, tf.errors.InvalidArgumentError) as error:
        raise ValueError(
            f"the model's outputs (shape {tuple(outputs.shape)}) and the labels (shape "
            f"{tuple(y.shape)}, {y.dtype.name}) do not fit its loss or accuracy: "
            f"{str(error).strip().splitlines()[-1]}. Match the last layer to the labels, "
            "or set the model's loss and accuracy for them.") from error


def prepare_run(dataset: DatasetBase, model: ModelBase, training_len: Sequence,
                output_dir: str, *, validate_interval: Optional[int] = None,
                test_interval: Optional[int] = None,
                save_network: bool = True, start_iteration: int = 0,
                snapshot_iterations: Sequence[int] = (),
                check_loss: bool = True) -> Tuple[int, Network]:
    """Checks a run's arguments and readies its directory and model.

    Clears an incomplete run in `output_dir` (a complete one raises
    FileExistsError), builds `model` and, if `save_network`, saves its
    initial weights (kernels, and biases as '{layer}.bias') and masks. With
    `check_loss` (the default) it first runs the model on two examples to
    check that its outputs fit its loss and the labels; a caller that checked
    an identical model already may skip it.

    Returns:
      (total_iterations, initial_weights): the effective kernels, by layer.

    Raises:
      ValueError: a bad length, interval, start or snapshot iteration, or a
        loss that does not fit the outputs.
      FileExistsError: `output_dir` holds a complete run.
    """
    total = schedule.training_iterations(training_len, dataset)
    schedule.check_iterations(total, start_iteration, snapshot_iterations)
    if validate_interval and dataset.validate is None:
        raise ValueError(
            "validate_interval is set but the dataset has no validation split; "
            "give the dataset one (e.g. validation_size=5000) or drop the interval.")
    if test_interval and dataset.test is None:
        raise ValueError(
            f"test_interval is {test_interval} but the dataset has no test split; pass "
            "test_interval=None (or --test_interval=0), or give the dataset a test split.")
    model.build(dataset.example_shape)
    if check_loss:
        check_loss_fits(model, dataset)
    os.makedirs(output_dir, exist_ok=True)
    runs.clear_incomplete(output_dir)
    clear_snapshots(output_dir)
    runs.mark_started(output_dir)

    # Dropout patterns follow the iteration, so a rewound run drops as level 0 did.
    model.set_training_step(start_iteration)
    # The biases too ({layer}.bias.npy), so that the saved network is whole.
    whole = model.get_current_weights(include_biases=True)
    if save_network:
        save_restore.save_network(paths.initial(output_dir), whole)
        save_restore.save_network(paths.masks(output_dir), model.masks)
    return total, {name: whole[name] for name in model.layer_names}


class Members:
    """The per-member state of one loop: recorders, outcomes and snapshots."""

    def __init__(self, output_dirs: Sequence[str], run_infos: Sequence[Mapping],
                 save_summaries: bool):
        self.output_dirs = list(output_dirs)
        self.run_infos = list(run_infos)
        self.recorders = [Recorder(d, save_summaries) for d in output_dirs]
        self.outcomes: List[Optional[DivergedError]] = [None] * len(output_dirs)
        self.snapshots: List[Dict[int, Network]] = [{} for _ in output_dirs]
        # The iteration the engine's weights are at.
        self.iteration = 0

    def active(self) -> List[int]:
        """The members still training (not diverged)."""
        return [k for k, outcome in enumerate(self.outcomes) if outcome is None]

    def diverged(self, k: int, iteration: int, reason: str) -> None:
        """Records member k as diverged, as a single run records it."""
        error = DivergedError(self.output_dirs[k], iteration, reason)
        self.recorders[k].save()
        runs.write_diverged(self.output_dirs[k], {"iteration": error.iteration,
                                                  "reason": error.what,
                                                  "run_info": dict(self.run_infos[k])})
        self.outcomes[k] = error


class Boundary:
    """What the loop learnt at one boundary, to be settled (recorded, checked for
    divergence) then or, with an overlapped evaluation, after the next chunk."""

    def __init__(self, iteration: int, losses: List[Dict[str, float]], finite: np.ndarray,
                 evaluation: Optional[Callable[[], Dict[str, Tuple[np.ndarray, np.ndarray]]]],
                 train_record: Optional[Tuple[np.ndarray, np.ndarray]]):
        self.iteration = iteration
        self.losses = losses  # per member: split -> loss, 'train' at least
        self.finite = finite
        self.evaluation = evaluation  # None: nothing evaluated here
        self.train_record = train_record  # per-member mean (loss, accuracy) to record


def run_loop(engine: Engine, datasets: Sequence[DatasetBase], total: int, members: Members,
             *, test_interval: Optional[int], validate_interval: Optional[int],
             train_interval: Optional[int], reporter: progress_lib.Reporter,
             start: int = 0, snapshot_iterations: Sequence[int] = (),
             save_network: bool = True) -> None:
    """Trains every member from iteration `start` to `total`.

    At each boundary it records metrics per member, checks each for
    divergence (a member whose loss or weights are not finite is recorded as
    diverged and left out from then on: its slice keeps being computed but
    nothing of it is read; once none is left the loop stops), keeps the
    snapshots at snapshot iterations and reports progress.

    With an engine that overlaps evaluation, a boundary's evaluation runs on a
    copy of the weights while the next chunk trains, and the boundary is
    settled (metrics recorded at its iteration, in order; divergence decided)
    after that chunk; if the run diverged there the engine's weights are put
    back to that iteration's, so it ends exactly as without overlap. A
    boundary that snapshots, and the last, are settled at once.
    """
    size = len(members.recorders)
    recorders = members.recorders
    intervals = {"test": test_interval, "validate": validate_interval if datasets[0].validate
                 is not None else None}
    reporter.start(total, start)
    last_save = time.time()
    members.iteration = start
    initial = [split for split, interval in intervals.items() if interval]
    if initial:
        results = engine.start_evaluation(initial)()
        for split in initial:
            losses, accuracies = results[split]
            for k in range(size):
                recorders[k].add(split, start, losses[k], accuracies[k])
    train_loss, train_accuracy = np.zeros(size), np.zeros(size)
    train_steps_done = 0
    iteration = start

    def settle(boundary: Boundary) -> bool:
        """Records a boundary and decides divergence; True when no member is left."""
        nonlocal last_save
        at = boundary.iteration
        if boundary.evaluation is not None:
            results = boundary.evaluation()
            for split, (split_losses, split_accuracies) in results.items():
                for k in members.active():
                    recorders[k].add(split, at, split_losses[k], split_accuracies[k])
                    boundary.losses[k][split] = float(split_losses[k])
        for k in members.active():
            reason = divergence(members.output_dirs[k], at, boundary.losses[k],
                                bool(boundary.finite[k]))
            if reason is not None:
                members.diverged(k, at, reason)
        active = members.active()
        if not active:
            return True
        if at in snapshot_iterations:
            weights = engine.member_weights()
            for k in active:
                members.snapshots[k][at] = weights[k]
                if save_network:
                    save_restore.save_network(paths.rewind(members.output_dirs[k], at),
                                              weights[k])
        if boundary.train_record is not None:
            for k in active:
                recorders[k].add("train", at, boundary.train_record[0][k],
                                 boundary.train_record[1][k])
        reporter.update(at, total, mean_latest(recorders, active))
        if time.time() - last_save >= progress_lib.LOG_SECONDS:
            # Saved now and then so that an interrupted run keeps its metrics so far.
            for k in active:
                recorders[k].save()
            last_save = time.time()
        return False

    pending: Optional[Boundary] = None
    try:
        for boundary in schedule.boundaries(total, [test_interval, intervals["validate"],
                                                    train_interval], start,
                                            snapshot_iterations):
            count = boundary - iteration
            loss, accuracy = engine.train_steps(
                schedule.batch_indices(datasets, iteration, count), iteration)
            if pending is not None:
                # The previous boundary's evaluation ran alongside this chunk.
                settled, pending = pending, None
                if settle(settled):
                    # It diverged there: end with the weights it diverged with.
                    engine.restore_evaluated()
                    members.iteration = settled.iteration
                    return
            iteration = members.iteration = boundary
            # Weighted by steps, so the recorded training metrics are per-step means
            # however the iterations were split into compiled calls.
            train_loss += loss * count
            train_accuracy += accuracy * count
            train_steps_done += count
            due = [split for split, interval in intervals.items()
                   if schedule.due(iteration, interval, total)]
            # Before training goes on: the weights of this iteration.
            finite = engine.finite()
            evaluation = engine.start_evaluation(due) if due else None
            record_train = (schedule.due(iteration, train_interval, total) if train_interval
                            else bool(due) or iteration == total)
            train_record = None
            if record_train:
                train_record = (train_loss / train_steps_done, train_accuracy / train_steps_done)
                train_loss, train_accuracy = np.zeros(size), np.zeros(size)
                train_steps_done = 0
            state = Boundary(iteration, [{"train": float(loss[k])} for k in range(size)],
                             finite, evaluation, train_record)
            # Settled at once where the run may end here anyway (a loss or weight
            # already not finite) or where later work needs it settled.
            plainly_diverging = any(not finite[k] or not np.isfinite(loss[k])
                                    for k in members.active())
            if (evaluation is not None and engine.overlaps and iteration < total
                    and iteration not in snapshot_iterations and not plainly_diverging):
                pending = state
                continue
            if settle(state):
                return
    except BaseException:
        if pending is not None:
            # An interrupted run keeps the metrics of the boundary it had reached.
            try:
                if settle(pending):
                    engine.restore_evaluated()
                    members.iteration = pending.iteration
            except Exception:  # noqa: BLE001 - the first error is the one to raise
                pass
        raise


def _each(function: Callable[[int], object], size: int) -> list:
    """[function(k) for k in range(size)], in threads when there are several."""
    if size == 1:
        return [function(0)]
    with concurrent.futures.ThreadPoolExecutor(WRITER_THREADS) as pool:
        return list(pool.map(function, range(size)))


def train_members(datasets: Sequence[DatasetBase], models: Sequence[ModelBase],
                  make_engine: Callable[[Sequence[ModelBase]], Engine],
                  training_len: Sequence, output_dirs: Sequence[str], *,
                  save_summaries: bool, save_network: bool,
                  test_interval: Optional[int], validate_interval: Optional[int],
                  train_interval: Optional[int], run_infos: Sequence[Optional[Mapping]],
                  reporter: progress_lib.Reporter, start_iteration: int = 0,
                  snapshot_iterations: Sequence[int] = ()
                  ) -> List[Union[TrainResult, DivergedError]]:
    """Trains K members with one engine and writes their K run directories.

    Args:
      datasets: one per member (checked by the caller).
      models: one per member (checked by the caller).
      output_dirs: one per member (checked by the caller).
      run_infos: one per member (checked by the caller).
      make_engine: makes the engine for the prepared (built) models; called
        after every directory is ready.
      training_len: ('iterations', N) or ('epochs', N).
      save_summaries: as in trainer.train, for every member.
      save_network: as in trainer.train, for every member.
      test_interval: as in trainer.train, for every member.
      validate_interval: as in trainer.train, for every member.
      train_interval: as in trainer.train, for every member.
      reporter: reports progress (progress.Reporter).
      start_iteration: as in trainer.train, for every member.
      snapshot_iterations: as in trainer.train, for every member.

    Returns:
      Per member, its TrainResult or the DivergedError it was recorded with.
      Each model holds its trained values.

    Raises:
      FileExistsError: a member's directory holds a complete run, before
        anything is written to it, or one was completed by another process
        while this one trained (the other results are discarded).
      ValueError: see prepare_run.
    """
    size = len(models)

    def prepare(k: int) -> Tuple[int, Network]:
        return prepare_run(
            datasets[k], models[k], training_len, output_dirs[k],
            validate_interval=validate_interval, test_interval=test_interval,
            save_network=save_network, start_iteration=start_iteration,
            snapshot_iterations=snapshot_iterations,
            check_loss=k == 0)  # members share the architecture and the labels

    # The first member alone: a setting prepare_run refuses is refused before any
    # other directory is touched.
    prepared = [prepare(0)]
    if size > 1:
        prepared += _each(lambda k: prepare(k + 1), size - 1)
    total = prepared[0][0]
    engine = make_engine(models)
    members = Members(output_dirs, [dict(info or {}) for info in run_infos], save_summaries)
    started = time.time()
    try:
        try:
            run_loop(engine, datasets, total, members, test_interval=test_interval,
                     validate_interval=validate_interval, train_interval=train_interval,
                     reporter=reporter, start=start_iteration,
                     snapshot_iterations=tuple(snapshot_iterations), save_network=save_network)
        except BaseException:
            for k in members.active():
                members.recorders[k].save()  # An interrupted run keeps its metrics so far.
            raise
        finally:
            engine.finish(models, members.iteration)
        seconds = time.time() - started
        xla, speed = engine.xla_record(), engine.speed_record()

        def finish(k: int) -> Union[TrainResult, DivergedError, None]:
            if members.outcomes[k] is not None:
                return members.outcomes[k]
            output_dir, recorder = output_dirs[k], members.recorders[k]
            whole = models[k].get_current_weights(include_biases=True)
            final_weights = {name: whole[name] for name in models[k].layer_names}
            if runs.is_complete(output_dir):
                return None
            if save_network:
                # The biases too ({layer}.bias.npy), so that the run can be rebuilt whole.
                save_restore.save_network(paths.final(output_dir), whole)
            recorder.save()
            recorder.close()  # the summaries are whole before done.json says so
            record = write_record(
                output_dir, total=total, training_len=training_len, seconds=seconds,
                model=models[k], dataset=datasets[k], final_metrics=recorder.latest(),
                run_info=members.run_infos[k], start_iteration=start_iteration,
                snapshot_iterations=snapshot_iterations,
                snapshot_layers=next(iter(members.snapshots[k].values()), {}).keys(),
                xla=xla, speed=speed)
            return TrainResult(prepared[k][1], final_weights, copy.deepcopy(recorder.metrics),
                               record, output_dir, members.snapshots[k])

        results = _each(finish, size)
    finally:
        for recorder in members.recorders:
            recorder.close()
    taken = [output_dirs[k] for k, result in enumerate(results) if result is None]
    if taken and size == 1:
        raise FileExistsError(
            f"{taken[0]} was completed by another process while this one trained; "
            "its results are kept and this run's are discarded.")
    if taken:
        raise FileExistsError(
            f"{', '.join(taken)} were completed by another process while this population "
            "trained; their results are kept and this population's are discarded.")
    return results
