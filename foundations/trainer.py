"""Training one network and recording everything about the run.

The iterations between two evaluations run inside one compiled tf.function
(a tf.while_loop over batches of indices into the training set, which stays
on the device), so the Python interpreter is entered once per evaluation,
not once per step.
"""

import logging
import os
import platform
import shutil
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import ModelBase

logger = logging.getLogger("lottery_ticket")

Network = Dict[str, np.ndarray]
ProgressFn = Callable[[int, int, Dict[str, Dict[str, float]]], None]

# Evaluation runs over a split in chunks of this many examples to bound memory.
_EVALUATION_CHUNK = 10000
# Without any evaluation interval, the loop still returns to Python this often
# so that progress can be reported.
_DEFAULT_CHUNK = 1000
_PROGRESS_SECONDS = 10.0
# Files and directories a run writes; an incomplete run's leftovers are removed
# before it is redone, and nothing else in its directory is touched.
_RUN_CONTENTS = ("initial", "final", "masks", "summaries", paths.METRICS_FILENAME)


def training_iterations(training_len: Sequence, dataset: DatasetBase) -> int:
    """Number of iterations that ('iterations', N) or ('epochs', N) means."""
    if (not isinstance(training_len, (tuple, list)) or len(training_len) != 2
            or training_len[0] not in ("iterations", "epochs")):
        raise ValueError(
            f"training_len must be ('iterations', N) or ('epochs', N), got "
            f"{training_len!r}.")
    unit, amount = training_len
    if int(amount) != amount or int(amount) < 1:
        raise ValueError(f"training_len {training_len!r}: N must be a positive integer.")
    if unit == "iterations":
        return int(amount)
    return int(amount) * dataset.iterations_per_epoch


def _boundaries(total: int, intervals: Sequence[Optional[int]]) -> list:
    """Iterations at which the compiled loop hands control back to Python."""
    points = {total}
    given = [int(i) for i in intervals if i]
    for interval in given or [_DEFAULT_CHUNK]:
        if interval < 1:
            raise ValueError(f"evaluation intervals must be positive, got {interval}.")
        points.update(range(interval, total, interval))
    return sorted(points)


def _op_determinism():
    """Whether tf.config.experimental.enable_op_determinism() is in force, if knowable."""
    try:  # TensorFlow has no public reader for this setting.
        from tensorflow.python.framework import config as framework_config
        return bool(framework_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return "unknown"


def _due(iteration: int, interval: Optional[int], total: int) -> bool:
    return bool(interval) and (iteration % interval == 0 or iteration == total)


def _clear_incomplete_run(output_dir: str) -> None:
    if paths.is_complete(output_dir):
        raise FileExistsError(
            f"the run in {output_dir!r} is already complete (it has "
            f"{paths.DONE_FILENAME}); it is never overwritten. Choose another "
            "output directory, or delete that run yourself to redo it.")
    leftovers = [name for name in _RUN_CONTENTS
                 if os.path.exists(os.path.join(output_dir, name))]
    if leftovers:
        logger.warning("%s holds an incomplete run (%s); redoing it from the start.",
                       output_dir, ", ".join(leftovers))
    for name in leftovers:
        target = os.path.join(output_dir, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
        else:
            os.remove(target)


class _Recorder:
    """Keeps metrics in memory, in TensorBoard and in metrics.json."""

    def __init__(self, output_dir: str, save_summaries: bool):
        self.output_dir = output_dir
        self.metrics: Dict[str, Dict[str, list]] = {}
        self.writer = (tf.summary.create_file_writer(paths.summaries(output_dir))
                       if save_summaries else None)

    def add(self, split: str, iteration: int, loss: float, accuracy: float) -> None:
        record = self.metrics.setdefault(split, {"iteration": [], "loss": [], "accuracy": []})
        record["iteration"].append(int(iteration))
        record["loss"].append(float(loss))
        record["accuracy"].append(float(accuracy))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.scalar(f"{split}/loss", float(loss), step=iteration)
                tf.summary.scalar(f"{split}/accuracy", float(accuracy), step=iteration)

    def latest(self) -> Dict[str, Dict[str, float]]:
        return {split: {"iteration": r["iteration"][-1], "loss": r["loss"][-1],
                        "accuracy": r["accuracy"][-1]}
                for split, r in self.metrics.items() if r["iteration"]}

    def save(self) -> None:
        save_restore.write_json(paths.metrics(self.output_dir), self.metrics)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()


def _log_progress(iteration: int, total: int, latest: Mapping[str, Mapping[str, float]],
                  started: float, label: str) -> None:
    rate = iteration / max(time.time() - started, 1e-9)
    parts = [f"{label}iteration {iteration}/{total}", f"{rate:.0f} it/s"]
    for split in ("train", "validate", "test"):
        if split in latest:
            parts.append(f"{split} acc {latest[split]['accuracy']:.4f} "
                         f"loss {latest[split]['loss']:.4f}")
    logger.info(" | ".join(parts))


def train(dataset: DatasetBase, model: ModelBase, optimizer_fn: Callable[[], Any],
          training_len: Sequence, output_dir: str, *,
          save_summaries: bool = True, save_network: bool = True,
          test_interval: Optional[int] = 100, validate_interval: Optional[int] = None,
          train_interval: Optional[int] = None, run_info: Optional[Mapping] = None,
          progress: Optional[ProgressFn] = None, progress_label: str = ""
          ) -> Tuple[Network, Network]:
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
      save_network: write initial/, final/ and masks/ (one .npy per layer).
      test_interval: evaluate the whole test split every this many iterations
        (and at iterations 0 and N); None or 0 never.
      validate_interval: the same for the validation split, if the dataset
        has one.
      train_interval: record the mean loss and accuracy of the training
        batches since the last record every this many iterations; None
        records at every test/validate evaluation.
      run_info: JSON-serializable facts about the run (hyperparameters,
        level, trial, ...), written into done.json.
      progress: called as progress(iteration, total, latest_metrics) each
        time the loop returns to Python; the default logs to the
        'lottery_ticket' logger about every 10 seconds.
      progress_label: text put before the default progress lines.

    Returns:
      (initial_weights, final_weights): dicts layer name -> effective kernel.
    """
    total = training_iterations(training_len, dataset)
    if validate_interval and dataset.validate is None:
        raise ValueError(
            "validate_interval is set but the dataset has no validation split; "
            "give the dataset one (e.g. validation_size=5000) or drop the interval.")
    os.makedirs(output_dir, exist_ok=True)
    _clear_incomplete_run(output_dir)

    model.build(dataset.example_shape)
    initial_weights = model.get_current_weights()
    if save_network:
        save_restore.save_network(paths.initial(output_dir), initial_weights)
        save_restore.save_network(paths.masks(output_dir), model.masks)

    x_train = tf.constant(dataset.train[0])
    y_train = tf.constant(dataset.train[1])
    variables = list(model.trainable_variables)
    optimizer = optimizer_fn()
    optimizer.build(variables)
    batch_size = dataset.train_batch_size

    @tf.function(input_signature=[tf.TensorSpec([None, batch_size], tf.int32)])
    def train_steps(indices):
        loss_total = tf.constant(0.0)
        accuracy_total = tf.constant(0.0)
        for step in tf.range(tf.shape(indices)[0]):
            x = tf.gather(x_train, indices[step])
            y = tf.gather(y_train, indices[step])
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                loss = model.loss(logits, y)
            gradients = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            loss_total += loss
            accuracy_total += model.accuracy(logits, y)
        count = tf.cast(tf.shape(indices)[0], tf.float32)
        return loss_total / count, accuracy_total / count

    example_spec = tf.TensorSpec([None] + list(dataset.example_shape), tf.float32)

    @tf.function(input_signature=[example_spec, tf.TensorSpec([None], tf.int32)])
    def evaluation_sums(x, y):
        logits = model(x, training=False)
        count = tf.cast(tf.shape(y)[0], tf.float32)
        return model.loss(logits, y) * count, model.accuracy(logits, y) * count

    split_tensors = {name: (tf.constant(x), tf.constant(y))
                     for name, (x, y) in dataset.splits.items() if name != "train"}

    def evaluate(split: str) -> Tuple[float, float]:
        x, y = split_tensors[split]
        loss_sum, correct = 0.0, 0.0
        for start in range(0, int(y.shape[0]), _EVALUATION_CHUNK):
            loss, accurate = evaluation_sums(x[start:start + _EVALUATION_CHUNK],
                                             y[start:start + _EVALUATION_CHUNK])
            loss_sum += float(loss)
            correct += float(accurate)
        return loss_sum / int(y.shape[0]), correct / int(y.shape[0])

    intervals = {"test": test_interval, "validate": validate_interval if dataset.validate
                 is not None else None}
    recorder = _Recorder(output_dir, save_summaries)
    started = time.time()
    last_report = started
    try:
        for split, interval in intervals.items():
            if interval:
                recorder.add(split, 0, *evaluate(split))
        train_loss, train_accuracy, train_steps_done = 0.0, 0.0, 0
        iteration = 0
        for boundary in _boundaries(total, [test_interval, intervals["validate"],
                                            train_interval]):
            count = boundary - iteration
            loss, accuracy = train_steps(dataset.batch_indices(iteration, count))
            iteration = boundary
            train_loss += float(loss) * count
            train_accuracy += float(accuracy) * count
            train_steps_done += count
            evaluated = False
            for split, interval in intervals.items():
                if _due(iteration, interval, total):
                    recorder.add(split, iteration, *evaluate(split))
                    evaluated = True
            record_train = (_due(iteration, train_interval, total) if train_interval
                            else evaluated or iteration == total)
            if record_train:
                recorder.add("train", iteration, train_loss / train_steps_done,
                             train_accuracy / train_steps_done)
                train_loss, train_accuracy, train_steps_done = 0.0, 0.0, 0
            if progress is not None:
                progress(iteration, total, recorder.latest())
            elif time.time() - last_report >= _PROGRESS_SECONDS or iteration == total:
                _log_progress(iteration, total, recorder.latest(), started, progress_label)
                recorder.save()
                last_report = time.time()
        final_weights = model.get_current_weights()
        if save_network:
            save_restore.save_network(paths.final(output_dir), final_weights)
        recorder.save()
    finally:
        recorder.close()

    elapsed = time.time() - started
    save_restore.write_json(paths.done(output_dir), {
        "iterations": total,
        "training_len": list(training_len),
        "seconds": elapsed,
        "iterations_per_second": total / max(elapsed, 1e-9),
        "model_seed": model.seed,
        "train_order_seed": dataset.train_order_seed,
        "train_batch_size": batch_size,
        "final": recorder.latest(),
        "mask_counts": {name: [int(np.count_nonzero(mask)), int(mask.size)]
                        for name, mask in model.masks.items()},
        "tensorflow": tf.__version__,
        # Both decide which kernels ran, so both are needed to repeat the numbers.
        "op_determinism": _op_determinism(),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "python": platform.python_version(),
        "run_info": dict(run_info or {}),
    })
    return initial_weights, final_weights
