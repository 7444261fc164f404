"""Populations: K networks trained together equal K single runs, file for file."""

import copy
import functools
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, register_synthetic_dataset, synthetic_dataset
from lottery_ticket.datasets.dataset_mnist import DatasetMnist
from lottery_ticket.experiments import lottery
from lottery_ticket.experiments import lockstep as population_trials
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, population, runs, save_restore, trainer
from lottery_ticket.foundations.training import stacked
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (ModelBase, bias_key, sigmoid_accuracy,
                                                   sigmoid_cross_entropy, unit_bias_masks)
from lottery_ticket.foundations.model_conv import ModelConv
from lottery_ticket.foundations.model_fc import ModelFc

register_synthetic_dataset()

ITERATIONS = 60
SNAPSHOT = 20
MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
SHAPES = {"layer0": (784, 32), "layer1": (32, 16), "layer2": (16, 10)}


def _random_masks(seed, keep=0.5):
    rng = np.random.default_rng(seed)
    return {name: (rng.random(shape) < keep).astype(np.float32)
            for name, shape in SHAPES.items()}


def _members():
    """Three different members: dense; masked (biases of dead units pruned too);
    masked with presets for kernels and a bias."""
    masked = _random_masks(1)
    masked["layer0"][:, :4] = 0  # four dead units, whose biases are masked as well
    masked.update(unit_bias_masks({"layer0": masked["layer0"]}))
    presets = ModelFc(SMALL_FC, seed=99).build([784]).get_current_weights(include_biases=True)
    presets[bias_key("layer1")] = np.full([16], 0.05, np.float32)
    return [ModelFc(SMALL_FC, seed=1),
            ModelFc(SMALL_FC, seed=2, masks=masked),
            ModelFc(SMALL_FC, seed=3, masks=_random_masks(3, keep=0.3), presets=presets)]


def _files(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names
                  if not name.startswith("events.out") and name not in (".lock",))


def _train_kwargs():
    return dict(test_interval=30, validate_interval=20, train_interval=None,
                snapshot_iterations=(SNAPSHOT,), progress=False)


@pytest.fixture(scope="module")
def fashion(fashion_mnist_dir):
    base = DatasetMnist(fashion_mnist_dir, train_order_seed=0, validation_size=2000)
    others = []
    for seed in (1, 2):
        other = copy.copy(base)
        other.train_order_seed = seed
        others.append(other)
    return [base] + others


@pytest.fixture(scope="module")
def trained_both(fashion, tmp_path_factory):
    """The same three members trained as a population and as three single runs."""
    root = tmp_path_factory.mktemp("population")
    infos = [{"member_name": f"m{k}"} for k in range(3)]
    pop_dirs = [str(root / f"pop{k}") for k in range(3)]
    pop_models = _members()
    seen = []
    pop = population.train_population(
        fashion, pop_models, MOMENTUM, ("iterations", ITERATIONS), pop_dirs,
        run_infos=infos, **dict(_train_kwargs(), progress=lambda *a: seen.append(a)))
    single_models = _members()
    singles = [trainer.train(dataset, model, MOMENTUM, ("iterations", ITERATIONS),
                             str(root / f"single{k}"), run_info=infos[k], **_train_kwargs())
               for k, (dataset, model) in enumerate(zip(fashion, single_models))]
    return pop, singles, pop_models, single_models, seen


def test_population_equals_single_runs(trained_both):
    pop, singles, pop_models, single_models, _ = trained_both
    for k, (ours, theirs) in enumerate(zip(pop, singles)):
        assert isinstance(ours, trainer.TrainResult)
        masks = save_restore.restore_network(paths.masks(ours.output_dir))
        for name, mask in save_restore.restore_network(paths.masks(theirs.output_dir)).items():
            np.testing.assert_array_equal(masks[name], mask)
        for name in theirs.initial:
            np.testing.assert_array_equal(ours.initial[name], theirs.initial[name])
            np.testing.assert_allclose(ours.final[name], theirs.final[name],
                                       rtol=1e-5, atol=1e-6, err_msg=f"member {k} {name}")
            # The model holds the trained values, as after trainer.train.
            np.testing.assert_array_equal(pop_models[k].get_current_weights()[name],
                                          ours.final[name])
        for name, bias in single_models[k].biases.items():
            np.testing.assert_allclose(pop_models[k].biases[name], bias, rtol=1e-5, atol=1e-6)
        snapshot, their_snapshot = ours.snapshots[SNAPSHOT], theirs.snapshots[SNAPSHOT]
        assert set(snapshot) == set(their_snapshot)
        for name in snapshot:
            np.testing.assert_allclose(snapshot[name], their_snapshot[name], rtol=1e-5,
                                       atol=1e-6)
        assert set(ours.metrics) == set(theirs.metrics) == {"train", "test", "validate"}
        for split in theirs.metrics:
            assert ours.metrics[split]["iteration"] == theirs.metrics[split]["iteration"]
            for what in ("loss", "accuracy"):
                np.testing.assert_allclose(ours.metrics[split][what],
                                           theirs.metrics[split][what], rtol=1e-5, atol=1e-6)


def test_population_writes_the_files_of_single_runs(trained_both):
    pop, singles, _, _, _ = trained_both
    for k, (ours, theirs) in enumerate(zip(pop, singles)):
        assert _files(ours.output_dir) == _files(theirs.output_dir)
        assert os.listdir(paths.summaries(ours.output_dir))
        ours_done, theirs_done = runs.read_done(ours.output_dir), runs.read_done(theirs.output_dir)
        assert set(ours_done) == set(theirs_done)
        assert ours_done["run_info"] == dict(theirs_done["run_info"],
                                             population={"size": 3, "member": k})
        for key in ("iterations", "model_seed", "train_order_seed", "mask_counts",
                    "snapshot_iterations", "snapshot_layers", "training_len"):
            assert ours_done[key] == theirs_done[key], key
        metrics = save_restore.read_json(paths.metrics(ours.output_dir))
        assert metrics == json.loads(json.dumps(ours.metrics))


def test_pruned_weights_stay_exactly_zero(trained_both):
    pop, _, pop_models, _, _ = trained_both
    for ours, model in zip(pop[1:], pop_models[1:]):
        for name, mask in model.masks.items():
            assert not ours.final[name][mask == 0].any()
            assert (ours.final[name][mask == 1] != ours.initial[name][mask == 1]).mean() > 0.5
    dead = pop_models[1].bias_masks[bias_key("layer0")] == 0
    assert dead.sum() == 4 and not pop_models[1].biases["layer0"][dead].any()


def test_progress_reports_each_boundary(trained_both):
    *_, seen = trained_both
    assert [iteration for iteration, _, _ in seen] == [20, 30, 40, 60]
    assert all(total == ITERATIONS for _, total, _ in seen)
    assert set(seen[-1][2]) == {"train", "test", "validate"}


def test_same_seeds_give_the_same_bits(tmp_path):
    dataset = synthetic_dataset(validate=False)
    results = []
    for attempt in range(2):
        models = [ModelFc(SMALL_FC, seed=s, masks=_random_masks(s)) for s in (4, 5)]
        results.append(population.train_population(
            dataset, models, MOMENTUM, ("iterations", 30),
            [str(tmp_path / f"{attempt}_{k}") for k in range(2)], test_interval=10,
            save_summaries=False, progress=False))
    for first, second in zip(*results):
        for name in first.final:
            np.testing.assert_array_equal(first.final[name], second.final[name])
        assert first.metrics == second.metrics
    # Two members with different seeds and data orders really differ.
    assert not np.array_equal(results[0][0].final["layer2"], results[0][1].final["layer2"])


class _Hidden(ModelBase):
    """One hidden layer whose size is not in its trace key (it is in the shapes)."""

    def __init__(self, hidden, seed=None):
        self.hidden = hidden
        super().__init__(seed=seed, name="hidden_net")

    def trace_key(self):
        return ("relu",)

    def forward(self, inputs, training=False):
        return self.dense_layer("out", self.dense_layer("hidden", inputs, self.hidden, "relu"),
                                10)


def test_refuses_bad_populations_before_any_work(tmp_path):
    dataset = synthetic_dataset(validate=False)
    run = functools.partial(population.train_population, optimizer_fn=MOMENTUM,
                            training_len=("iterations", 10), test_interval=None,
                            progress=False)
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(ValueError, match="at least one model"):
        run(datasets=[], models=[], output_dirs=[])
    with pytest.raises(ValueError, match=r"hidden \(784, 8\) vs hidden \(784, 4\)"):
        run(datasets=dataset, output_dirs=dirs, models=[_Hidden(8, seed=0), _Hidden(4, seed=1)])
    with pytest.raises(ValueError, match="trace_key"):
        run(datasets=dataset, output_dirs=dirs, models=[
            ModelFc(SMALL_FC, seed=0),
            ModelFc({"layers": [(32, "tanh"), (16, "relu"), (10, None)]}, seed=1)])
    with pytest.raises(ValueError, match="one architecture"):
        run(datasets=dataset, output_dirs=dirs, models=[
            ModelFc(SMALL_FC, seed=0), ModelConv("conv2", seed=0)])
    with pytest.raises(ValueError, match="same data"):
        run(datasets=[dataset, DatasetBase((dataset.train[0] + 1, dataset.train[1]), 20,
                                           dataset.test)],
            models=[ModelFc(SMALL_FC, seed=0), ModelFc(SMALL_FC, seed=1)], output_dirs=dirs)
    with pytest.raises(ValueError, match="2 output_dirs for 3 models"):
        run(datasets=dataset, output_dirs=dirs,
            models=[ModelFc(SMALL_FC, seed=s) for s in range(3)])
    with pytest.raises(ValueError, match="clipnorm"):
        run(datasets=dataset, output_dirs=dirs,
            models=[ModelFc(SMALL_FC, seed=s) for s in range(2)],
            optimizer_fn=functools.partial(tf.keras.optimizers.SGD, 0.1, clipnorm=1.0))
    assert not os.listdir(tmp_path)

    # One complete run among the members: nothing is written anywhere.
    trainer.train(dataset, ModelFc(SMALL_FC, seed=0), MOMENTUM, ("iterations", 5), dirs[1],
                  test_interval=None, progress=False)
    before = _files(dirs[1])
    with pytest.raises(FileExistsError, match="complete"):
        run(datasets=dataset, output_dirs=dirs,
            models=[ModelFc(SMALL_FC, seed=s) for s in range(2)])
    assert not os.path.exists(dirs[0]) and _files(dirs[1]) == before


def test_a_diverging_member_is_recorded_and_the_others_finish(tmp_path):
    dataset = synthetic_dataset(validate=False)
    huge = {name: np.full(shape, 1e18, np.float32) for name, shape in SHAPES.items()}
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)

    def members():
        return [ModelFc(SMALL_FC, seed=0), ModelFc(SMALL_FC, seed=1, presets=huge)]

    dirs = [str(tmp_path / "ok"), str(tmp_path / "bad")]
    with pytest.raises(population.PopulationDivergedError) as raised:
        population.train_population(dataset, members(), sgd, ("iterations", 20), dirs,
                                    test_interval=10, progress=False, save_summaries=False)
    results = raised.value.results
    assert isinstance(results[0], trainer.TrainResult) and runs.is_complete(dirs[0])
    assert isinstance(results[1], runs.DivergedError) and not runs.is_complete(dirs[1])
    with pytest.raises(runs.DivergedError) as single:
        trainer.train(dataset, members()[1], sgd, ("iterations", 20), str(tmp_path / "one"),
                      test_interval=10, progress=False, save_summaries=False)
    ours, theirs = runs.read_diverged(dirs[1]), runs.read_diverged(str(tmp_path / "one"))
    assert (ours["iteration"], ours["reason"]) == (theirs["iteration"], theirs["reason"])
    assert results[1].iteration == single.value.iteration
    assert _files(dirs[1]) == _files(str(tmp_path / "one"))
    # The healthy member trained as it would have alone.
    alone = trainer.train(dataset, members()[0], sgd, ("iterations", 20),
                          str(tmp_path / "alone"), test_interval=10, progress=False,
                          save_summaries=False)
    for name in alone.final:
        np.testing.assert_allclose(results[0].final[name], alone.final[name], rtol=1e-5,
                                   atol=1e-6)


def test_conv_members_with_dropout_match_single_runs(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((120, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 120).astype(np.int32)
    dataset = DatasetBase((x, y), 10, (x[:40], y[:40]), train_order_seed=0)
    other = copy.copy(dataset)
    other.train_order_seed = 1

    def members():
        return [ModelConv(((2,),), dense_units=(8,), dropout=0.5, seed=s) for s in (0, 1)]

    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
    ours = population.train_population([dataset, other], members(), sgd, ("iterations", 6),
                                       [str(tmp_path / f"p{k}") for k in range(2)],
                                       test_interval=3, progress=False, save_summaries=False)
    for k, (data, model) in enumerate(zip([dataset, other], members())):
        # Without XLA: under XLA stateless dropout draws other patterns (another
        # random algorithm), so single runs with xla on differ from both.
        theirs = trainer.train(data, model, sgd, ("iterations", 6), str(tmp_path / f"s{k}"),
                               test_interval=3, progress=False, save_summaries=False,
                               xla="off")
        for name in theirs.final:
            np.testing.assert_allclose(ours[k].final[name], theirs.final[name], rtol=1e-5,
                                       atol=1e-6)
        np.testing.assert_allclose(ours[k].metrics["train"]["loss"],
                                   theirs.metrics["train"]["loss"], rtol=1e-5)


LOTTERY = ExperimentConfig().replace(
    dataset="synthetic_test", data_location="unused", validation_size=100,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 30),
    batch_size=20, test_interval=10, validate_interval=10, levels=2, rewind_iteration=5)


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


def test_lottery_population_equals_run_trial_and_resumes(tmp_path):
    seeds = [3, 4]
    alone = {seed: lottery.run_trial(str(tmp_path / "alone" / f"trial{seed}"), LOTTERY,
                                     seed=seed, progress=False) for seed in seeds}
    # Seed 3's trial is complete already: it is read back, seed 4's trains.
    together_dir = tmp_path / "together"
    lottery.run_trial(paths.trial(str(together_dir), 3), LOTTERY, seed=3, progress=False)
    results = population_trials.run_trials(str(together_dir), LOTTERY, seeds, progress=False)
    assert all(level.resumed for level in results[0].values())
    assert not any(level.resumed for level in results[1].values())
    for seed, trial in zip(seeds, results):
        assert sorted(trial) == [0, 1, 2]
        for level, result in trial.items():
            expected = alone[seed][level]
            for name in expected.masks:
                np.testing.assert_array_equal(result.masks[name], expected.masks[name])
                np.testing.assert_allclose(result.final[name], expected.final[name],
                                           rtol=1e-5, atol=1e-6)
            assert _files(paths.run(paths.trial(str(together_dir), seed), level)) == _files(
                paths.run(str(tmp_path / "alone" / f"trial{seed}"), level))
        assert sorted(os.listdir(paths.run(paths.trial(str(together_dir), seed), 0))).count(
            "rewind5") == 1
    done = runs.read_done(paths.run(paths.trial(str(together_dir), 4), 1))
    assert done["run_info"]["population"] == {"size": 1, "member": 0}
    assert done["start_iteration"] == 5

    # Resuming trains nothing and touches no file.
    before = _mtimes(together_dir)
    again = population_trials.run_trials(
        [paths.trial(str(together_dir), seed) for seed in seeds], LOTTERY, seeds,
        progress=False)
    assert all(level.resumed for trial in again for level in trial.values())
    assert _mtimes(together_dir) == before
    # A single trial resumes a population's trial as its own.
    assert all(level.resumed for level in lottery.run_trial(
        paths.trial(str(together_dir), 4), LOTTERY, seed=4, progress=False).values())


def test_lottery_population_trains_fresh_trials_together(tmp_path, monkeypatch):
    calls = []
    original = population.train_population

    def counting(datasets, models, *args, **kwargs):
        calls.append(len(models))
        return original(datasets, models, *args, **kwargs)

    monkeypatch.setattr(population, "train_population", counting)
    config = LOTTERY.replace(levels=1, rewind_iteration=0)
    results = population_trials.run_trials(str(tmp_path), config, [7, 8], progress=False)
    assert calls == [2, 2]
    alone = lottery.run_trial(str(tmp_path / "alone"), config, seed=8, progress=False)
    for level in (0, 1):
        for name in alone[level].masks:
            np.testing.assert_array_equal(results[1][level].masks[name],
                                          alone[level].masks[name])
    with pytest.raises(ValueError, match="repeat"):
        population_trials.run_trials(str(tmp_path), config, [7, 7])


class _Tiny(ModelBase):
    """2 inputs, 10 ReLU units, one sigmoid output (as a logit)."""

    loss = staticmethod(sigmoid_cross_entropy)
    accuracy = staticmethod(sigmoid_accuracy)

    def __init__(self, seed=None):
        super().__init__(seed=seed, name="tiny_net")

    def trace_key(self):
        return ("2-10-1",)

    def forward(self, inputs, training=False):
        return self.dense_layer("output", self.dense_layer("hidden", inputs, 10, "relu"), 1)


class _BatchMixing(_Tiny):
    """Centres each batch: rows depend on other rows, so no batched forward."""

    def trace_key(self):
        return ("2-10-1", "centred")

    def forward(self, inputs, training=False):
        return super().forward(inputs - tf.reduce_mean(inputs, axis=0), training)


def _engines_of(dataset):
    return stacked.ENGINES.engines(dataset)


def test_dense_models_train_batched_and_others_not():
    assert population.batched_reason(ModelFc(SMALL_FC, seed=0).build([784]), [784]) is None
    assert population.batched_reason(_Tiny(seed=0).build([2]), [2]) is None
    assert "mixes" in population.batched_reason(_BatchMixing(seed=0).build([2]), [2])
    conv = ModelConv(((2,),), dense_units=(8,), dropout=0.5, seed=0).build([8, 8, 1])
    assert "dropout" in population.batched_reason(conv, [8, 8, 1])
    conv = ModelConv(((2,),), dense_units=(8,), seed=0).build([8, 8, 1])
    assert "not dense" in population.batched_reason(conv, [8, 8, 1])


def test_the_population_of_the_fixture_trained_batched(fashion, trained_both):
    engines = _engines_of(fashion[0])
    assert engines and all(engine.batched for engine in engines)


@pytest.mark.parametrize("model_class", [_Tiny, _BatchMixing])
def test_tiny_sigmoid_population_equals_single_runs(tmp_path, model_class):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(300, 2)).astype(np.float32)
    y = (np.sum(x ** 2, axis=1) < 0.5).astype(np.float32)
    datasets = [DatasetBase((x, y), 25, (x[:100], y[:100]), train_order_seed=s)
                for s in range(3)]
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.5, momentum=0.5)
    kwargs = dict(test_interval=20, progress=False, save_summaries=False)
    ours = population.train_population(
        datasets, [model_class(seed=s) for s in range(3)], sgd, ("iterations", 40),
        [str(tmp_path / f"p{k}") for k in range(3)], **kwargs)
    assert [engine.batched for engine in _engines_of(datasets[0])] == [
        model_class is _Tiny]
    for k in range(3):
        theirs = trainer.train(datasets[k], model_class(seed=k), sgd, ("iterations", 40),
                               str(tmp_path / f"s{k}"), **kwargs)
        for name in theirs.final:
            np.testing.assert_allclose(ours[k].final[name], theirs.final[name], rtol=1e-5,
                                       atol=1e-6)
        for split in ("train", "test"):
            for what in ("loss", "accuracy"):
                np.testing.assert_allclose(ours[k].metrics[split][what],
                                           theirs.metrics[split][what], rtol=1e-5, atol=1e-6)


def test_old_module_name_still_imports_the_lockstep_trials():
    from lottery_ticket.experiments import population as old_name  # pylint: disable=C0415
    assert old_name.run_trials is population_trials.run_trials
    assert old_name.datasets is population_trials.datasets
    assert population_trials.__name__ == "lottery_ticket.experiments.lockstep"


def test_a_population_evaluates_each_split_with_one_compiled_function(tmp_path):
    dataset = synthetic_dataset()  # of its own: only this population's engine is kept
    members = _members()[:2]
    for member in members:
        member.evaluation_chunk = 48  # 200 and 100 examples: a loop and a remainder
    results = population.train_population(
        dataset, members, MOMENTUM, ("iterations", 20),
        [str(tmp_path / f"pop{k}") for k in range(2)], test_interval=5, validate_interval=10,
        progress=False, save_summaries=False)
    assert results[0].metrics["test"]["iteration"] == [0, 5, 10, 15, 20]
    engine, = stacked.ENGINES.engines(dataset)
    assert engine.evaluation_chunk() == 48
    # Five test and three validation evaluations (and the final ones), each one call
    # of a function traced once for its split.
    assert engine.tracing_counts() == {"evaluate_test": 1, "evaluate_validate": 1}
    alone = trainer.train(dataset, _members()[1], MOMENTUM, ("iterations", 20),
                          str(tmp_path / "alone"), test_interval=5, validate_interval=10,
                          progress=False, save_summaries=False)
    for split in ("test", "validate"):
        np.testing.assert_allclose(results[1].metrics[split]["loss"],
                                   alone.metrics[split]["loss"], rtol=1e-5)
