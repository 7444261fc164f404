"""The training package: public evaluation, whole networks on disk, one loop for both engines."""

import functools
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, register_synthetic_dataset, synthetic_dataset
from lottery_ticket.analysis import reader, report
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, runs, save_restore, trainer
from lottery_ticket.foundations.model_base import bias_key
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.training import batched, evaluation, stacked

register_synthetic_dataset()

MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
SMALL = ExperimentConfig().replace(
    dataset="synthetic_test", data_location="unused", validation_size=100,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 40),
    batch_size=20, test_interval=20, validate_interval=20, levels=1)
FOUNDATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "foundations")


def _sources():
    for root, _, files in os.walk(FOUNDATIONS):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                with open(path, encoding="utf-8") as f:
                    yield os.path.relpath(path, FOUNDATIONS), f.read()


# -- evaluate -------------------------------------------------------------------


def test_evaluate_gives_the_recorded_final_metrics_and_traces_once(tmp_path):
    dataset = synthetic_dataset()
    model = ModelFc(SMALL_FC, seed=4)
    result = trainer.train(dataset, model, MOMENTUM, ("iterations", 40), str(tmp_path / "run"),
                           test_interval=20, validate_interval=20, progress=False)
    trained = model.get_current_weights(include_biases=True)
    for split in ("test", "validate"):
        loss, accuracy = trainer.evaluate(model, dataset, split)
        assert isinstance(loss, float) and isinstance(accuracy, float)
        assert (loss, accuracy) == (result.record["final"][split]["loss"],
                                    result.record["final"][split]["accuracy"]), split
    for name, value in model.get_current_weights(include_biases=True).items():
        np.testing.assert_array_equal(value, trained[name])  # the model is not changed
    # Another model of the same structure reuses the traced function, with its own values.
    other = ModelFc(SMALL_FC, seed=9)
    x, y = dataset.splits["test"]
    expected = float(other.loss(other(x), y))
    assert trainer.evaluate(other, dataset, "test")[0] == pytest.approx(expected, rel=1e-6)
    assert evaluation.evaluator(other, dataset, "test").tracing_count() == 1
    assert trainer.evaluate(model, dataset, "test")[0] == result.record["final"]["test"]["loss"]
    assert evaluation.evaluator(model, dataset, "test").tracing_count() == 1
    with pytest.raises(ValueError, match="no 'validate' split"):
        trainer.evaluate(model, synthetic_dataset(validate=False), "validate")


# -- Biases on disk ---------------------------------------------------------------


def test_initial_and_final_hold_the_biases(tmp_path):
    rng = np.random.default_rng(0)
    presets = {bias_key("layer0"): rng.normal(size=32).astype(np.float32)}
    model = ModelFc(SMALL_FC, presets=presets, seed=1)
    result = trainer.train(synthetic_dataset(), model, MOMENTUM, ("iterations", 20),
                           str(tmp_path / "run"), test_interval=10, progress=False)
    initial = save_restore.restore_network(paths.initial(str(tmp_path / "run")))
    final = save_restore.restore_network(paths.final(str(tmp_path / "run")))
    layers = ["layer0", "layer1", "layer2"]
    assert sorted(initial) == sorted(final) == sorted(layers + [bias_key(n) for n in layers])
    np.testing.assert_array_equal(initial[bias_key("layer0")], presets[bias_key("layer0")])
    np.testing.assert_array_equal(initial[bias_key("layer1")], np.zeros(16, np.float32))
    for name, value in model.biases.items():
        np.testing.assert_array_equal(final[bias_key(name)], value)
        assert np.any(value != initial[bias_key(name)])  # trained, not the initial values
    # The result and masks/ stay kernels only.
    assert sorted(result.initial) == sorted(result.final) == layers
    assert sorted(save_restore.restore_network(paths.masks(str(tmp_path / "run")))) == layers
    # The saved run rebuilds whole: the same outputs as the trained model.
    rebuilt = ModelFc(SMALL_FC, presets=final, seed=7)
    x = synthetic_dataset().test[0][:50]
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())


def test_population_members_save_their_biases(tmp_path):
    models = [ModelFc(SMALL_FC, seed=s) for s in range(2)]
    dirs = [str(tmp_path / f"m{k}") for k in range(2)]
    trainer.train_population(synthetic_dataset(), models, MOMENTUM, ("iterations", 20), dirs,
                             test_interval=10, progress=False, save_summaries=False)
    for model, directory in zip(models, dirs):
        final = save_restore.restore_network(paths.final(directory))
        for name, value in model.biases.items():
            np.testing.assert_array_equal(final[bias_key(name)], value)


def _remove_bias_files(trial):
    removed = 0
    for root, _, files in os.walk(trial):
        for name in files:
            if name.endswith(".bias.npy"):
                os.remove(os.path.join(root, name))
                removed += 1
    return removed


def test_pruning_a_resumed_level_sees_kernels_only(tmp_path):
    trial = str(tmp_path / "trial")
    first = lottery.run_trial(trial, SMALL, seed=2, progress=False)
    level1 = paths.run(trial, 1)
    saved_masks = save_restore.restore_network(paths.masks(level1))
    for root, _, files in os.walk(level1, topdown=False):
        for name in files:
            os.remove(os.path.join(root, name))
        os.rmdir(root)
    # Level 0 is read back from disk (its final/ holds the biases) and pruned again.
    again = lottery.run_trial(trial, SMALL, seed=2, progress=False)
    assert again[0].resumed and not again[1].resumed
    masks = save_restore.restore_network(paths.masks(level1))
    assert sorted(masks) == sorted(saved_masks) == ["layer0", "layer1", "layer2"]
    for name, mask in saved_masks.items():
        np.testing.assert_array_equal(masks[name], mask)
    np.testing.assert_array_equal(again[1].final["layer0"], first[1].final["layer0"])


def test_a_run_saved_without_bias_files_resumes_and_reports(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL, seed=1, progress=False)
    assert _remove_bias_files(trial) == 2 * 2 * 3  # initial/ and final/ of two levels
    done = {level: runs.read_done(paths.run(trial, level)) for level in (0, 1)}
    resumed = lottery.run_trial(trial, SMALL, seed=1, progress=False)
    assert [resumed[level].resumed for level in (0, 1)] == [True, True]
    for level in (0, 1):
        assert runs.read_done(paths.run(trial, level)) == done[level]  # not trained again
        assert sorted(resumed[level].final) == ["layer0", "layer1", "layer2"]
    written = report.report(trial, str(tmp_path / "figures"))
    assert written["written"] and not written["problems"]
    ticket = reader.load_ticket(paths.run(trial, 1))
    assert sorted(ticket["initial"]) == sorted(ticket["masks"])


def test_a_ticket_with_bias_files_is_read_kernels_only(tmp_path):
    trial = str(tmp_path / "trial")
    lottery.run_trial(trial, SMALL.replace(levels=0), seed=1, progress=False)
    run = paths.run(trial, 0)
    assert os.path.exists(os.path.join(paths.initial(run), "layer0.bias.npy"))
    ticket = reader.load_ticket(run)
    assert sorted(ticket["initial"]) == sorted(ticket["masks"]) == ["layer0", "layer1", "layer2"]


# -- One loop, public names ------------------------------------------------------------


def test_no_module_uses_another_modules_private_names():
    private = re.compile(r"\b(?!self\b|cls\b)([a-z_][a-z0-9_]*)\._[a-z][A-Za-z0-9_]*")
    found = []
    for name, text in _sources():
        if "protected-access" in text:
            found.append(f"{name}: a protected-access suppression")
        for number, line in enumerate(text.splitlines(), start=1):
            code = line.split("#", 1)[0]
            for match in private.finditer(code):
                if match.group(1) not in ("tf", "np", "os"):
                    found.append(f"{name}:{number}: {match.group(0)}")
    assert not found, "\n".join(found)


def test_a_single_run_is_the_loop_with_one_member(tmp_path, monkeypatch):
    from lottery_ticket.foundations.training import loop
    sizes = []
    original = loop.run_loop

    def counting(engine, datasets, *args, **kwargs):
        sizes.append((type(engine).__name__, engine.size, len(datasets)))
        return original(engine, datasets, *args, **kwargs)

    monkeypatch.setattr(loop, "run_loop", counting)
    trainer.train(synthetic_dataset(), ModelFc(SMALL_FC, seed=0), MOMENTUM,
                  ("iterations", 10), str(tmp_path / "single"), test_interval=5,
                  progress=False)
    trainer.train_population(synthetic_dataset(), [ModelFc(SMALL_FC, seed=s) for s in (0, 1)],
                             MOMENTUM, ("iterations", 10),
                             [str(tmp_path / "a"), str(tmp_path / "b")], test_interval=5,
                             progress=False)
    assert sizes == [("SingleEngine", 1, 1), ("StackedEngine", 2, 2)]


def test_what_the_population_benchmark_reads(tmp_path):
    dataset = synthetic_dataset()
    template = ModelFc(SMALL_FC, seed=0).build([784])

    def population(name):
        trainer.train_population(dataset, [ModelFc(SMALL_FC, seed=s) for s in (0, 1)],
                                 MOMENTUM, ("iterations", 6),
                                 [str(tmp_path / f"{name}{k}") for k in (0, 1)],
                                 test_interval=None, progress=False, save_summaries=False)
        return stacked.ENGINES.engines(dataset)[-1]

    with batched.vectorized_only("forced by the test"):
        assert batched.batched_reason(template, [784]) == "forced by the test"
        first = population("a")
        assert not first.batched and first.steady_timing()[1] == 0  # its one call traced
        again = population("b")
    assert again is first and again.steady_timing()[1] == 6  # reused: 6 steps, no trace
    assert batched.batched_reason(template, [784]) is None  # forgotten on leaving
