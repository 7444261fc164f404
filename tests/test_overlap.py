"""Overlapped evaluation: a copy of the weights evaluated on a second thread while
training goes on must record exactly what evaluating in place records."""

import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.cli.batch import thread_environment
from lottery_ticket.experiments import single_run
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import runs, trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.training import overlap, single

MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
WIDE_FC = {"layers": [(120, "relu"), (60, "relu"), (10, None)]}


def _train(dataset, model, directory, setting, iterations=50, **params):
    params.setdefault("test_interval", 10)
    params.setdefault("validate_interval", 15)
    return trainer.train(dataset, model, MOMENTUM, ("iterations", iterations), str(directory),
                         progress=False, save_summaries=False, overlap_evaluation=setting,
                         **params)


def _read(directory, name):
    with open(os.path.join(str(directory), name), encoding="utf-8") as f:
        return json.load(f)


def _text(directory, name):
    with open(os.path.join(str(directory), name), encoding="utf-8") as f:
        return f.read()


def _same_network(first, second):
    assert sorted(first) == sorted(second)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def _weights(model):
    return model.get_current_weights(include_biases=True)


# -- The setting ------------------------------------------------------------------


def test_the_setting_is_checked_and_auto_wants_an_idle_core(monkeypatch):
    assert overlap.resolve_overlap("on") and overlap.resolve_overlap(True)
    assert not overlap.resolve_overlap("off") and not overlap.resolve_overlap(False)
    with pytest.raises(ValueError, match="must be one of auto, on, off"):
        overlap.resolve_overlap("sometimes")
    monkeypatch.delenv(overlap.OVERLAP_AUTO_VARIABLE, raising=False)
    monkeypatch.setattr(overlap, "cores", lambda: 2)
    threads = {"intra": 1, "inter": 2}
    monkeypatch.setattr(overlap, "thread_setting", lambda name: threads[name])
    assert overlap.resolve_overlap("auto")  # one kernel thread of two cores
    threads["intra"] = 0  # TensorFlow's default: every core
    assert not overlap.resolve_overlap("auto")
    threads["intra"] = 2
    assert not overlap.resolve_overlap("auto")
    threads.update(intra=1, inter=1)  # --threads=1
    assert overlap.resolve_overlap("auto")
    monkeypatch.setattr(overlap, "cores", lambda: 1)
    assert not overlap.resolve_overlap("auto")
    monkeypatch.setattr(overlap, "cores", lambda: 2)
    # The batch runner's workers fill every core: their environment turns auto off.
    for name, value in thread_environment(1).items():
        monkeypatch.setenv(name, value)
    assert not overlap.resolve_overlap("auto")
    assert overlap.resolve_overlap("on")  # asked for, it still runs
    monkeypatch.setenv(overlap.OVERLAP_AUTO_VARIABLE, "maybe")
    with pytest.raises(ValueError, match="LOTTERY_TICKET_OVERLAP_AUTO is 'maybe'"):
        overlap.resolve_overlap("auto")


def test_a_bad_setting_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="overlap_evaluation is 'yes'"):
        _train(synthetic_dataset(), ModelFc(SMALL_FC, seed=1), tmp_path / "run", "yes")
    assert not os.path.exists(tmp_path / "run")
    with pytest.raises(ValueError, match="overlap_evaluation is 'yes'"):
        ExperimentConfig().replace(overlap_evaluation="yes")


def test_the_configuration_threads_it_to_single_runs_not_populations():
    config = ExperimentConfig().replace(overlap_evaluation="on")
    assert single_run.training_arguments(config)["overlap_evaluation"] == "on"
    assert "overlap_evaluation" not in single_run.training_arguments(config, population=True)
    # Like xla, it does not set runs apart.
    assert "overlap_evaluation" in ExperimentConfig.non_identity_fields()


# -- The same bits ----------------------------------------------------------------


@pytest.mark.parametrize("iterations", [50, 47])
def test_overlapped_runs_record_the_bits_of_in_place_evaluation(tmp_path, iterations):
    dataset = synthetic_dataset()
    results = {}
    for setting in ("off", "on"):
        model = ModelFc(SMALL_FC, seed=3)
        results[setting] = _train(dataset, model, tmp_path / setting, setting,
                                  iterations=iterations, snapshot_iterations=(20,))
        results[setting].model_weights = _weights(model)
    off, on = results["off"], results["on"]
    assert "overlap_evaluation" not in off.record and on.record["overlap_evaluation"] is True
    assert on.record["evaluation_wait_seconds"] >= 0
    assert on.metrics == off.metrics
    assert _read(tmp_path / "on", "metrics.json") == _read(tmp_path / "off", "metrics.json")
    assert on.record["final"] == off.record["final"]
    assert on.metrics["test"]["iteration"] == [0, 10, 20, 30, 40, iterations]
    _same_network(on.final, off.final)
    _same_network(on.model_weights, off.model_weights)
    # The rewind snapshot is the network at its iteration, in memory and on disk.
    _same_network(on.snapshots[20], off.snapshots[20])
    for name in ("final", "rewind20"):
        on_dir, off_dir = str(tmp_path / "on" / name), str(tmp_path / "off" / name)
        assert sorted(os.listdir(on_dir)) == sorted(os.listdir(off_dir))
        for file in os.listdir(on_dir):
            np.testing.assert_array_equal(np.load(os.path.join(on_dir, file)),
                                          np.load(os.path.join(off_dir, file)))


def test_the_same_seed_gives_the_same_bits_run_after_run_with_overlap(tmp_path):
    dataset = synthetic_dataset()
    first = _train(dataset, ModelFc(SMALL_FC, seed=5), tmp_path / "a", "on")
    again = _train(dataset, ModelFc(SMALL_FC, seed=5), tmp_path / "b", "on")
    assert again.metrics == first.metrics
    _same_network(again.final, first.final)


def test_sparse_layers_and_sparse_evaluation_overlap_with_the_same_bits(tmp_path):
    dataset = synthetic_dataset()
    rng = np.random.default_rng(0)
    # Below SPARSE_EVALUATION_BELOW: the copy evaluates through its own survivor vectors.
    masks = {"layer0": (rng.random((784, 120)) < 0.01).astype(np.float32),
             "layer1": (rng.random((120, 60)) < 0.02).astype(np.float32),
             "layer2": np.ones((60, 10), np.float32)}
    results = {}
    for setting in ("off", "on"):
        model = ModelFc(WIDE_FC, masks=masks, seed=2)
        results[setting] = _train(dataset, model, tmp_path / setting, setting, xla="on",
                                  sparse_below=0.1)
        results[setting].model_weights = _weights(model)
    off, on = results["off"], results["on"]
    assert on.record["xla"] == off.record["xla"]
    assert on.record["xla"]["sparse_layers"] == ["layer0", "layer1"]
    assert on.record["xla"]["evaluation"]  # evaluated through the survivors
    assert on.metrics == off.metrics
    _same_network(on.final, off.final)
    _same_network(on.model_weights, off.model_weights)
    for layer, mask in masks.items():
        assert np.all(on.final[layer][mask == 0] == 0)


def test_a_copy_evaluation_equals_the_in_place_one_on_a_reused_engine():
    dataset = synthetic_dataset()
    steps = trainer.compiled_steps(dataset, ModelFc(SMALL_FC, seed=7), MOMENTUM())
    try:
        steps.train_steps(dataset.batch_indices(0, 5))
        expected = {split: steps.evaluate(split) for split in ("test", "validate")}
        assert steps.start_copy_evaluation(["test", "validate"])() == expected
        before = _weights(steps.model)
        steps.train_steps(dataset.batch_indices(5, 5))
        assert not np.array_equal(_weights(steps.model)["layer0"], before["layer0"])
        # Back to the values the copy was taken from.
        steps.restore_copy()
        _same_network(_weights(steps.model), before)
        assert {split: steps.evaluate(split) for split in expected} == expected
        counts = steps.tracing_counts()
        assert counts["evaluate_test_copy"] == counts["evaluate_validate_copy"] == 1
    finally:
        steps.in_use = False


# -- Divergence and interruption ---------------------------------------------------


def _exploding_test_split_dataset():
    """Training data that trains, and a test split whose loss overflows: the run
    diverges on an evaluation loss while its weights and training loss are finite."""
    dataset = synthetic_dataset()
    x, y = dataset.splits["test"]
    return DatasetBase(dataset.train, 20, (np.asarray(x) * 3e37, y),
                       validate=dataset.splits["validate"], train_order_seed=0)


def test_a_run_diverging_on_an_evaluation_loss_ends_as_without_overlap(tmp_path):
    dataset = _exploding_test_split_dataset()
    ended = {}
    for setting in ("off", "on"):
        model = ModelFc(SMALL_FC, seed=3)
        with pytest.raises(trainer.DivergedError) as raised:
            _train(dataset, model, tmp_path / setting, setting)
        ended[setting] = (raised.value.iteration, _weights(model))
    assert ended["on"][0] == ended["off"][0] == 10
    # The model holds the values of the iteration it diverged at, not a chunk later.
    _same_network(ended["on"][1], ended["off"][1])
    for name in ("diverged.json", "metrics.json"):  # as text: the losses hold NaNs
        assert _text(tmp_path / "on", name) == _text(tmp_path / "off", name), name
    assert _read(tmp_path / "on", "diverged.json")["iteration"] == 10
    assert sorted(os.listdir(tmp_path / "on")) == sorted(os.listdir(tmp_path / "off"))
    assert not runs.is_complete(str(tmp_path / "on"))


def test_an_interrupted_run_keeps_the_metrics_it_reached_and_redoes_the_same(
        tmp_path, monkeypatch):
    dataset = synthetic_dataset()
    calls = {"count": 0}
    train_steps = single.CompiledSteps.train_steps

    def interrupted(self, indices):
        calls["count"] += 1
        if calls["count"] == 4:  # the chunk after iteration 20's evaluation
            raise KeyboardInterrupt()
        return train_steps(self, indices)

    saved = {}
    for setting in ("off", "on"):
        calls["count"] = 0
        monkeypatch.setattr(single.CompiledSteps, "train_steps", interrupted)
        with pytest.raises(KeyboardInterrupt):
            _train(dataset, ModelFc(SMALL_FC, seed=3), tmp_path / setting, setting)
        saved[setting] = _read(tmp_path / setting, "metrics.json")
        monkeypatch.setattr(single.CompiledSteps, "train_steps", train_steps)
        assert not runs.is_complete(str(tmp_path / setting))
    assert saved["on"] == saved["off"]
    assert saved["on"]["test"]["iteration"] == [0, 10, 20]
    # Run again, the interrupted runs are redone whole, with the same bits.
    redone = {setting: _train(dataset, ModelFc(SMALL_FC, seed=3), tmp_path / setting,
                              setting) for setting in ("off", "on")}
    assert redone["on"].metrics == redone["off"].metrics
    _same_network(redone["on"].final, redone["off"].final)
    assert runs.is_complete(str(tmp_path / "on"))


def test_a_keras_model_with_batch_norm_overlaps_with_the_same_bits(tmp_path):
    from test_keras_model import image_dataset, residual_model  # pylint: disable=C0415
    from lottery_ticket.foundations.keras_model import KerasModel  # pylint: disable=C0415
    dataset = image_dataset()
    results = {}
    for setting in ("off", "on"):
        model = KerasModel(residual_model(), seed=1)
        results[setting] = trainer.train(
            dataset, model, functools.partial(tf.keras.optimizers.SGD, 0.05),
            ("iterations", 12), str(tmp_path / setting), save_summaries=False,
            test_interval=4, progress=False, xla="off", overlap_evaluation=setting)
        results[setting].model_weights = _weights(model)
    off, on = results["off"], results["on"]
    assert on.record["overlap_evaluation"] and "overlap_evaluation" not in off.record
    assert on.metrics == off.metrics  # the moving statistics were copied too
    _same_network(on.model_weights, off.model_weights)


class _Uncopyable(ModelFc):
    """Its own forward: no trusted trace key, so it trains in place, uncopied."""

    def forward(self, *args, **kwargs):
        return super().forward(*args, **kwargs)

    def __deepcopy__(self, memo):
        raise TypeError("this model holds a handle that cannot be copied")


def test_a_network_that_cannot_be_copied_evaluates_in_place_and_says_so(tmp_path, caplog):
    dataset = synthetic_dataset()
    on = _train(dataset, _Uncopyable(SMALL_FC, seed=3), tmp_path / "on", "on")
    off = _train(dataset, ModelFc(SMALL_FC, seed=3), tmp_path / "off", "off")
    assert "overlap_evaluation" not in on.record
    assert "evaluation_wait_seconds" not in on.record
    assert "cannot be copied" in caplog.text
    assert on.metrics == off.metrics


def test_fully_connected_runs_default_to_one_thread_unless_the_environment_says():
    from lottery_ticket.cli.runners import default_threads
    assert default_threads("fc", {}, has_gpu=False, cores=2) == 1
    # Conv nets use every core; a GPU has no idle CPU core to gain; one core has none.
    assert default_threads("conv2", {}, has_gpu=False, cores=2) is None
    assert default_threads("fc", {}, has_gpu=True, cores=2) is None
    assert default_threads("fc", {}, has_gpu=False, cores=1) is None
    # The batch runner sets its workers' thread counts: they are left alone.
    assert default_threads("fc", thread_environment(1), has_gpu=False, cores=2) is None


@pytest.mark.skipif(overlap.cores() < 2, reason="needs a second core for the overlap")
def test_the_train_runner_overlaps_evaluation_by_default_on_a_cpu(tmp_path):
    import subprocess
    import sys
    from test_science_argfiles import _write_idx
    from conftest import synthetic_split
    data = tmp_path / "idx"
    data.mkdir()
    for prefix, (x, y) in (("train", synthetic_split(200, 1)), ("t10k", synthetic_split(100, 2))):
        _write_idx(str(data), f"{prefix}-images-idx3-ubyte.gz",
                   np.round(x * 255).reshape(-1, 28, 28), 2051)
        _write_idx(str(data), f"{prefix}-labels-idx1-ubyte.gz", y, 2049)
    environ = {key: value for key, value in os.environ.items()
               if key not in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                              overlap.OVERLAP_AUTO_VARIABLE)}
    records = {}
    for name, extra in (("default", []), ("two_threads", ["--threads=2"])):
        run_dir = tmp_path / name
        result = subprocess.run(
            [sys.executable, "-m", "lottery_ticket.mnist_fc.runners.train",
             f"--output_dir={run_dir}", f"--mnist_location={data}", "--validation_size=0",
             "--layers=((16, 'relu'), (10, None))", "--training_len=iterations:20",
             "--batch_size=20", "--test_interval=10", "--xla=off", *extra],
            capture_output=True, text=True, timeout=300, env=environ)
        assert result.returncode == 0, result.stderr[-3000:]
        records[name] = json.load(open(run_dir / "done.json"))
    assert records["default"]["overlap_evaluation"] is True
    assert "overlap_evaluation" not in records["two_threads"]
    # The thread count changes no number.
    assert records["default"]["final"] == records["two_threads"]["final"]
