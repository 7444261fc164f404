"""The lottery ticket loop: masks per level, resetting, resuming, extending."""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.foundations import experiment
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import lottery_experiment

PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}
TINY = constants.DEFAULT.replace(training_len=("iterations", 30), test_interval=10,
                                validate_interval=15)


def small_experiment(tmp_path, make_model=None, levels=3):
    make_model = make_model or (lambda level, presets, masks: ModelFc(
        SMALL_FC, presets=presets, masks=masks, seed=0))

    def train_model(level, dataset, model):
        return trainer.train(dataset, model,
                             functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1),
                             ("iterations", 20), str(tmp_path / str(level)),
                             test_interval=10)

    return experiment.experiment(synthetic_dataset, make_model, train_model,
                                 functools.partial(pruning.prune_by_percent, PERCENTS),
                                 levels)


def test_levels_prune_and_reset_to_level0_initialization(tmp_path):
    results = small_experiment(tmp_path)
    assert sorted(results) == [0, 1, 2, 3]
    expected = {"layer0": 784 * 32, "layer1": 32 * 16, "layer2": 16 * 10}
    for level in range(4):
        masks = results[level].masks
        for name, percent in PERCENTS.items():
            assert int(masks[name].sum()) == expected[name], (level, name)
            expected[name] -= pruning.count_to_prune(percent, expected[name])
        for name in masks:
            np.testing.assert_array_equal(results[level].initial[name],
                                          results[0].initial[name] * masks[name])
            assert not results[level].final[name][masks[name] == 0].any()


def test_make_model_that_ignores_presets_is_caught(tmp_path):
    def careless(level, presets, masks):
        return ModelFc(SMALL_FC, masks=masks, seed=level)  # forgets presets

    with pytest.raises(RuntimeError, match="level-0 initialization"):
        small_experiment(tmp_path, make_model=careless, levels=1)


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


def test_interrupted_experiment_resumes_where_it_stopped(tmp_path, fashion_mnist_dir,
                                                         monkeypatch):
    reference = lottery_experiment.run_experiment(
        str(tmp_path / "reference"), fashion_mnist_dir, TINY, levels=3, seed=7)

    real_train = trainer.train

    def interrupted_at_level_2(dataset, model, optimizer_fn, training_len, output_dir,
                               **params):
        if output_dir.endswith(os.path.join("2", "lottery")):
            def stop(iteration, total, latest):
                if iteration >= 20:
                    raise KeyboardInterrupt()
            params["progress"] = stop
        return real_train(dataset, model, optimizer_fn, training_len, output_dir, **params)

    trial = tmp_path / "trial"
    monkeypatch.setattr(trainer, "train", interrupted_at_level_2)
    with pytest.raises(KeyboardInterrupt):
        lottery_experiment.run_experiment(str(trial), fashion_mnist_dir, TINY, levels=3,
                                          seed=7)
    monkeypatch.setattr(trainer, "train", real_train)
    assert runs.is_complete(str(trial / "1" / "lottery"))
    assert not runs.is_complete(str(trial / "2" / "lottery"))
    assert os.path.isdir(trial / "2" / "lottery" / "initial")  # partial leftovers
    finished = _mtimes(trial / "0") | _mtimes(trial / "1")

    resumed = lottery_experiment.run_experiment(str(trial), fashion_mnist_dir, TINY,
                                                levels=3, seed=7)
    assert _mtimes(trial / "0") | _mtimes(trial / "1") == finished
    assert [resumed[level].resumed for level in range(4)] == [True, True, False, False]
    for level in range(4):
        for name in reference[level].masks:
            np.testing.assert_array_equal(resumed[level].masks[name],
                                          reference[level].masks[name])
            np.testing.assert_array_equal(resumed[level].final[name],
                                          reference[level].final[name])
    # Layer0 keeps exactly what three rounds of 20% leave.
    assert int(resumed[3].masks["layer0"].sum()) == 120422

    before = _mtimes(trial)
    extended = lottery_experiment.run_experiment(str(trial), fashion_mnist_dir, TINY,
                                                 levels=4, seed=7)
    assert sorted(extended) == [0, 1, 2, 3, 4] and not extended[3].masks is None
    assert all(_mtimes(trial)[path] == stamp for path, stamp in before.items())
    assert runs.is_complete(str(trial / "4" / "lottery"))


def test_resuming_with_other_settings_is_refused(tmp_path, fashion_mnist_dir):
    trial = str(tmp_path / "trial")
    lottery_experiment.run_experiment(trial, fashion_mnist_dir, TINY, levels=0, seed=1)
    other = constants.DEFAULT.replace(training_len=("iterations", 31), test_interval=10,
                                     validate_interval=15)
    with pytest.raises(ValueError, match=r"config\.training_len.*30.*31"):
        lottery_experiment.run_experiment(trial, fashion_mnist_dir, other, levels=1, seed=1)


def _lockstep_parts(tmp_path, calls, diverge=None):
    """make_models/train_models for experiment.lockstep over trials seeded 0..K-1,
    recording each call's (level, trials); `diverge` = (trial, level) to fail."""
    def make_models(level, trials, presets, masks):
        return [ModelFc(SMALL_FC, presets=start, masks=mask, seed=trial)
                for trial, start, mask in zip(trials, presets, masks)]

    def train_models(level, trials, models):
        calls.append((level, list(trials)))
        results = []
        for trial, model in zip(trials, models):
            if (trial, level) == diverge:
                results.append(runs.DivergedError(f"trial{trial}", 5, "loss nan"))
                continue
            results.append(trainer.train(
                synthetic_dataset(), model,
                functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1),
                ("iterations", 20), str(tmp_path / f"trial{trial}" / str(level)),
                test_interval=10))
        return results

    return make_models, train_models


def test_lockstep_trials_equal_separate_experiments_with_one_call_per_level(tmp_path):
    calls = []
    make_models, train_models = _lockstep_parts(tmp_path / "together", calls)
    prune = functools.partial(pruning.prune_by_percent, PERCENTS)
    outcome = experiment.lockstep(make_models, train_models, [prune, prune], 2)
    assert calls == [(0, [0, 1]), (1, [0, 1]), (2, [0, 1])]
    assert outcome.failed == {}
    for trial in (0, 1):
        alone = experiment.experiment(
            synthetic_dataset,
            lambda level, presets, masks, seed=trial: ModelFc(SMALL_FC, presets=presets,
                                                              masks=masks, seed=seed),
            lambda level, dataset, model, seed=trial: trainer.train(
                dataset, model, functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1),
                ("iterations", 20), str(tmp_path / "alone" / f"trial{seed}" / str(level)),
                test_interval=10),
            prune, 2)
        assert sorted(outcome.levels[trial]) == [0, 1, 2]
        for level in range(3):
            for name in alone[level].masks:
                np.testing.assert_array_equal(outcome.levels[trial][level].masks[name],
                                              alone[level].masks[name])
                np.testing.assert_array_equal(outcome.levels[trial][level].final[name],
                                              alone[level].final[name])
    # Different seeds: the trials are not copies of each other.
    assert not np.array_equal(outcome.levels[0][0].initial["layer0"],
                              outcome.levels[1][0].initial["layer0"])


def test_lockstep_trial_that_fails_stops_and_the_others_go_on(tmp_path):
    calls = []
    make_models, train_models = _lockstep_parts(tmp_path, calls, diverge=(1, 1))
    prune = functools.partial(pruning.prune_by_percent, PERCENTS)
    outcome = experiment.lockstep(make_models, train_models, [prune] * 3, 2)
    assert calls == [(0, [0, 1, 2]), (1, [0, 1, 2]), (2, [0, 2])]
    assert list(outcome.failed) == [1]
    assert isinstance(outcome.failed[1], runs.DivergedError)
    assert sorted(outcome.levels[1]) == [0]
    assert sorted(outcome.levels[0]) == sorted(outcome.levels[2]) == [0, 1, 2]


def test_lockstep_names_the_trial_whose_model_ignored_its_presets(tmp_path):
    calls = []
    _, train_models = _lockstep_parts(tmp_path, calls)

    def careless(level, trials, presets, masks):
        return [ModelFc(SMALL_FC, masks=mask, seed=10 + level if trial == 1 else trial,
                        presets=None if trial == 1 else start)
                for trial, start, mask in zip(trials, presets, masks)]

    prune = functools.partial(pruning.prune_by_percent, PERCENTS)
    with pytest.raises(RuntimeError, match="trial-b: level 1 did not start from the level-0 "
                                           "initialization"):
        experiment.lockstep(careless, train_models, [prune, prune], 1,
                            names=["trial-a", "trial-b"])
    with pytest.raises(ValueError, match="1 names for 2 trials"):
        experiment.lockstep(careless, train_models, [prune, prune], 1, names=["a"])


def test_lockstep_refuses_an_injected_function_that_skips_a_trial(tmp_path):
    calls = []
    make_models, train_models = _lockstep_parts(tmp_path, calls)
    prune = functools.partial(pruning.prune_by_percent, PERCENTS)
    with pytest.raises(ValueError, match=r"train_models answered 1 times for 2 trials"):
        experiment.lockstep(make_models, lambda level, trials, models: train_models(
            level, trials[:1], models[:1]), [prune, prune], 1)
