"""One-shot pruning: exact counts of iterative level k, the schedule, runs beside a trial."""

import functools
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, interrupting, register_synthetic_dataset, synthetic_dataset
from lottery_ticket.analysis import reader
from lottery_ticket.experiments import lottery, oneshot
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import experiment, paths, pruning, runs, save_restore, trainer
from lottery_ticket.foundations.model_fc import ModelFc


register_synthetic_dataset()

PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}
SGD = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
SMALL = ExperimentConfig().replace(
    dataset="synthetic_test", data_location="unused", validation_size=100,
    layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 20),
    batch_size=20, test_interval=10, validate_interval=10, levels=3)
LENET_SHAPES = {"layer0": (784, 300), "layer1": (300, 100), "layer2": (100, 10)}


def _network(shapes, seed=0):
    rng = np.random.default_rng(seed)
    masks = {name: np.ones(shape, np.float32) for name, shape in shapes.items()}
    # Rounded so that ties occur and must be broken the same way.
    final = {name: np.round(rng.normal(size=shape), 2) for name, shape in shapes.items()}
    return masks, final


def _iterated_counts(percent, count, level):
    counts = [count]
    for _ in range(level):
        counts.append(counts[-1] - pruning.count_to_prune(percent, counts[-1]))
    return counts[level]


def _mtimes(directory):
    return {os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
            for root, _, files in os.walk(directory) for f in files}


@pytest.mark.parametrize("level", [0, 1, 2, 3, 7, 12, 30])
def test_layerwise_oneshot_keeps_exactly_the_iterative_counts(level):
    masks, final = _network(LENET_SHAPES)
    pruned = experiment.oneshot_pruning(PERCENTS)(masks, final, level=level)
    for name, percent in PERCENTS.items():
        expected = _iterated_counts(percent, int(np.prod(LENET_SHAPES[name])), level)
        assert int(pruned[name].sum()) == expected, (name, level)
    if level == 3:
        assert int(pruned["layer0"].sum()) == 120422  # as the iterative lottery test finds
    # With the scores fixed, k iterative steps remove the same weights as one shot.
    iterated = masks
    for _ in range(level):
        iterated = pruning.prune(PERCENTS, iterated, final)
    for name in masks:
        np.testing.assert_array_equal(pruned[name], iterated[name])


@pytest.mark.parametrize("scores", ["magnitude", "random"])
@pytest.mark.parametrize("level", [1, 5, 12])
def test_global_oneshot_keeps_the_pooled_iterative_counts(level, scores):
    masks, final = _network(LENET_SHAPES, seed=1)
    prune = experiment.oneshot_pruning(PERCENTS, selection="global", scores=scores, seed=4)
    pruned = prune(masks, final, level=level)
    hidden = 784 * 300 + 300 * 100
    assert int(pruned["layer0"].sum() + pruned["layer1"].sum()) == _iterated_counts(
        0.2, hidden, level)
    assert int(pruned["layer2"].sum()) == _iterated_counts(0.1, 1000, level)
    iterated = masks
    for _ in range(level):
        iterated = pruning.prune(PERCENTS, iterated, final, selection="global", scores=scores,
                                 seed=4)
    for name in masks:
        np.testing.assert_array_equal(pruned[name], iterated[name])


def test_global_pools_never_merge_when_their_oneshot_rates_coincide():
    # Two pools whose one-step rates are equal at level 1 (both remove half).
    percents = {"a": 0.5, "b": 0.5 - 1e-9, "c": 0.0}
    shapes = {"a": (4, 4), "b": (4, 4), "c": (4, 2)}
    masks, final = _network(shapes, seed=2)
    final["b"] = final["b"] + 100.0  # b's weights all outrank a's
    pruned = experiment.oneshot_pruning(percents, selection="global")(masks, final, level=1)
    assert int(pruned["a"].sum()) == 8 and int(pruned["b"].sum()) == 8


def test_unit_oneshot_keeps_the_iterative_unit_counts():
    percents = {"layer0": 0.2, "layer1": 0.2}
    masks, final = _network(LENET_SHAPES, seed=3)
    for level in (1, 4, 9):
        pruned = experiment.oneshot_pruning(percents, selection="unit")(masks, final,
                                                                        level=level)
        for name, units in (("layer0", 300), ("layer1", 100)):
            kept = int(np.count_nonzero(pruning.surviving_units(pruned[name])))
            assert kept == _iterated_counts(0.2, units, level), (name, level)
        # The next layer lost the inputs of the removed units.
        removed = ~pruning.surviving_units(pruned["layer0"])
        assert not pruned["layer1"][removed].any()


def test_oneshot_rates_make_one_count_exact():
    for surviving in (1, 7, 1000, 235200):
        for left in range(0, surviving + 1, max(1, surviving // 97)):
            rate = pruning.rate_leaving(surviving, left)
            assert pruning.count_to_prune(rate, surviving) == surviving - left


def _small_experiment(tmp_path, prune_masks, iterations, schedule="iterative"):
    def make_model(level, presets, masks):
        return ModelFc(SMALL_FC, presets=presets, masks=masks, seed=0)

    def train_model(level, dataset, model):
        return trainer.train(dataset, model, SGD, ("iterations", 20), str(tmp_path / str(level)),
                             test_interval=10, progress=False)

    return experiment.experiment(synthetic_dataset, make_model, train_model, prune_masks,
                                 iterations, schedule=schedule)


def test_the_pruning_function_is_told_the_level_and_results_carry_metrics(tmp_path):
    seen = []

    def prune_masks(masks, final, level):
        seen.append(level)
        return pruning.prune(PERCENTS, masks, final)

    results = _small_experiment(tmp_path, prune_masks, 2)
    assert seen == [1, 2]
    for level in (0, 1, 2):
        assert results[level].metrics["test"]["iteration"] == [0, 10, 20]
        assert results[level].metrics == save_restore.read_json(
            paths.metrics(str(tmp_path / str(level))))


def test_oneshot_schedule_prunes_level0_straight_to_each_level(tmp_path):
    calls = []
    prune = experiment.oneshot_pruning(PERCENTS)

    def prune_masks(masks, final, level):
        calls.append((level, int(sum(m.sum() for m in masks.values()))))
        return prune(masks, final, level=level)

    results = _small_experiment(tmp_path, prune_masks, [3, 1], schedule="oneshot")
    dense = 784 * 32 + 32 * 16 + 16 * 10
    assert sorted(results) == [0, 1, 3] and calls == [(1, dense), (3, dense)]
    for level in (1, 3):
        expected = experiment.oneshot_pruning(PERCENTS)(results[0].masks, results[0].final,
                                                        level=level)
        for name, mask in results[level].masks.items():
            np.testing.assert_array_equal(mask, expected[name])
            np.testing.assert_array_equal(results[level].initial[name],
                                          results[0].initial[name] * mask)


def test_bad_schedules_are_refused_before_any_training(tmp_path):
    plain = functools.partial(pruning.prune_by_percent, PERCENTS)
    with pytest.raises(ValueError, match="must accept level=k"):
        _small_experiment(tmp_path, plain, [1], schedule="oneshot")
    with pytest.raises(ValueError, match="pass the number of levels"):
        _small_experiment(tmp_path, plain, [1, 2])
    with pytest.raises(ValueError, match="distinct whole numbers >= 1"):
        _small_experiment(tmp_path, experiment.oneshot_pruning(PERCENTS), [0, 2],
                          schedule="oneshot")
    with pytest.raises(ValueError, match="schedule 'once'"):
        _small_experiment(tmp_path, plain, 1, schedule="once")
    assert not os.listdir(tmp_path)


@pytest.fixture(scope="module")
def oneshot_trial(tmp_path_factory):
    trial = str(tmp_path_factory.mktemp("oneshot") / "trial1")
    return trial, oneshot.run_oneshot(trial, SMALL, [1, 3], seed=1, progress=False)


def test_oneshot_runs_land_beside_the_trial_with_exact_counts(oneshot_trial):
    trial, results = oneshot_trial
    assert sorted(os.listdir(trial)) == ["0", "1", "3"]
    assert os.listdir(os.path.join(trial, "0")) == ["lottery"]
    sizes = {"layer0": 784 * 32, "layer1": 32 * 16, "layer2": 16 * 10}
    for level in (1, 3):
        run = paths.run(trial, level, "oneshot")
        assert runs.is_complete(run)
        done = runs.read_done(run)
        assert done["run_info"]["schedule"] == "oneshot" and done["run_info"]["level"] == level
        for name, size in sizes.items():
            kept = _iterated_counts(PERCENTS[name], size, level)
            assert int(results[level].masks[name].sum()) == kept
            assert done["mask_counts"][name] == [kept, size]
            np.testing.assert_array_equal(results[level].initial[name],
                                          results[0].initial[name] * results[level].masks[name])
        assert results[level].metrics["test"]["iteration"] == [0, 10, 20]


def test_the_report_reads_oneshot_runs_as_their_own_experiment(oneshot_trial):
    trial, _ = oneshot_trial
    records, problems = reader.load_experiment(trial)
    assert not problems
    assert sorted((r["experiment_name"], r["level"]) for r in records) == [
        ("lottery", 0), ("oneshot", 1), ("oneshot", 3)]


def test_oneshot_resumes_extends_and_shares_level0_with_the_lottery_trial(oneshot_trial):
    trial, first = oneshot_trial
    before = _mtimes(trial)
    again = oneshot.run_oneshot(trial, SMALL, "3,1,2", seed=1, progress=False)
    assert [again[level].resumed for level in (0, 1, 2, 3)] == [True, True, False, True]
    assert all(_mtimes(trial)[path] == stamp for path, stamp in before.items())
    assert again[3].metrics == first[3].metrics
    # The iterative trial reads the same level 0 back.
    iterative = lottery.run_trial(trial, SMALL.replace(levels=1), seed=1, progress=False)
    assert iterative[0].resumed and not iterative[1].resumed
    # One step of either schedule is the same pruning.
    for name, mask in iterative[1].masks.items():
        np.testing.assert_array_equal(mask, again[1].masks[name])
    with pytest.raises(ValueError, match=r"config\.learning_rate: saved 0\.1, asked 0\.05"):
        oneshot.run_oneshot(trial, SMALL.replace(learning_rate=0.05), [1], seed=1)
    with pytest.raises(ValueError, match=r"seed: saved 1, asked 2"):
        oneshot.run_oneshot(trial, SMALL, [1], seed=2)


def test_an_interrupted_oneshot_level_is_redone(tmp_path, monkeypatch):
    real_train = trainer.train
    interrupted = interrupting(real_train, os.path.join("2", "oneshot"))

    trial = str(tmp_path / "trial")
    monkeypatch.setattr(trainer, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        oneshot.run_oneshot(trial, SMALL, [2], seed=0)
    monkeypatch.setattr(trainer, "train", real_train)
    assert not runs.is_complete(paths.run(trial, 2, "oneshot"))
    results = oneshot.run_oneshot(trial, SMALL, [2], seed=0, progress=False)
    assert [results[level].resumed for level in (0, 2)] == [True, False]
    assert runs.is_complete(paths.run(trial, 2, "oneshot"))


def test_rewound_oneshot_starts_from_the_snapshot(tmp_path):
    config = SMALL.replace(rewind_iteration=5)
    trial = str(tmp_path / "trial")
    results = oneshot.run_oneshot(trial, config, [2], seed=0, progress=False)
    snapshot = save_restore.restore_network(paths.rewind(paths.run(trial, 0), 5))
    for name, mask in results[2].masks.items():
        np.testing.assert_array_equal(results[2].initial[name], snapshot[name] * mask)
    assert runs.read_done(paths.run(trial, 2, "oneshot"))["start_iteration"] == 5


@pytest.mark.parametrize("levels", ["", "0", "1,1", "a", [1.5], [True]])
def test_bad_oneshot_levels_are_refused(levels, tmp_path):
    with pytest.raises(ValueError, match="distinct pruning levels >= 1"):
        oneshot.run_oneshot(str(tmp_path / "trial"), SMALL, levels)
    assert not os.path.exists(tmp_path / "trial")


def _cli(module, argv, capsys):
    capsys.readouterr()
    try:
        module.main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out, err = capsys.readouterr()
    return code, out, err


SMALL_FLAGS = ["--dataset=synthetic_test", "--mnist_location=unused", "--validation_size=100",
               "--layers=[(32, 'relu'), (16, 'relu'), (10, None)]",
               "--training_len=iterations:20", "--batch_size=20", "--test_interval=10",
               "--validate_interval=10"]


def test_the_oneshot_runner_writes_one_level_and_reads_it_back(tmp_path, capsys):
    from lottery_ticket.mnist_fc.runners import oneshot as runner
    run = tmp_path / "trial1" / "2" / "oneshot"
    code, out, err = _cli(runner, [f"--output_dir={run}", "--seed=1", "--rewind_iteration=5",
                                   *SMALL_FLAGS], capsys)
    assert code == 0, err
    assert "level 2:" in out and runs.is_complete(str(run))
    assert runs.is_complete(str(tmp_path / "trial1" / "0" / "lottery"))
    assert os.path.isdir(tmp_path / "trial1" / "0" / "lottery" / "rewind5")
    done = runs.read_done(str(run))
    assert done["start_iteration"] == 5 and done["mask_counts"]["layer0"] == [
        _iterated_counts(0.2, 784 * 32, 2), 784 * 32]
    stamps = _mtimes(tmp_path)
    assert _cli(runner, [f"--output_dir={run}", "--seed=1", "--rewind_iteration=5",
                         *SMALL_FLAGS], capsys)[0] == 0
    assert _mtimes(tmp_path) == stamps


@pytest.mark.parametrize("argv, fragment", [
    (["--output_dir={tmp}/trial1/2/lottery"], "is not a one-shot run directory"),
    (["--output_dir={tmp}/trial1/0/oneshot"], "with a level >= 1"),
    (["--output_dir={tmp}/trial1/2/oneshot", "--rewind_iteration=20"],
     "rewind_iteration is 20 but training_len is 20"),
    (["--output_dir={tmp}/trial1/2/oneshot", "--levels=3"], "--levels"),
])
def test_bad_oneshot_runner_flags_are_one_error_line(argv, fragment, tmp_path, capsys):
    from lottery_ticket.mnist_fc.runners import oneshot as runner
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    code, _, err = _cli(runner, argv + SMALL_FLAGS[:1] + ["--training_len=iterations:20"],
                        capsys)
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], err
    assert not os.path.exists(tmp_path / "trial1")


def test_the_oneshot_argfile_prints_a_line_per_trial_and_level(capsys):
    from lottery_ticket.mnist_fc.argfiles import oneshot_argfile
    code, out, err = _cli(oneshot_argfile, [
        "--trials=2", "--first_trial=3", "--oneshot_levels=7,3", "--experiment_root=/r",
        "--mnist_location=/d", "--training_len=iterations:300", "--rewind_iteration=100"],
        capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"--output_dir=/r/trial{trial}/{level}/oneshot --seed={trial} --mnist_location=/d "
        f"--training_len=iterations:300 --rewind_iteration=100"
        for trial in (3, 4) for level in (3, 7)]
    code, out, _ = _cli(oneshot_argfile, ["--trials=1", "--last_level=2", "--mnist_location=/d"],
                        capsys)
    assert code == 0
    assert [line.split()[0].split("/trial1/")[1] for line in out.splitlines()] == [
        "1/oneshot", "2/oneshot"]
    code, _, err = _cli(oneshot_argfile, ["--oneshot_levels=0,2", "--mnist_location=/d"],
                        capsys)
    assert code == 2 and "distinct pruning levels >= 1" in err


def test_control_argfiles_take_level0_presets_from_the_rewind_snapshot(capsys):
    from lottery_ticket.mnist_fc.argfiles import random_prune_argfile
    code, out, err = _cli(random_prune_argfile, [
        "--trials=1", "--first_level=1", "--last_level=1", "--runs_per_level=1",
        "--experiment_root=/r", "--mnist_location=/d", "--rewind_iteration=100"], capsys)
    assert code == 0, err
    assert "--presets=/r/trial1/0/lottery/rewind100 " in out


def test_one_shot_runs_named_like_the_trial_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="would take the place of the iterative levels"):
        oneshot.run_oneshot(str(tmp_path / "trial1"), SMALL, [2], seed=1,
                            experiment_name="lottery")
    assert not (tmp_path / "trial1").exists()


def test_a_strategy_that_refuses_the_network_fails_before_level_0_trains(tmp_path):
    # Unit pruning cannot remove the output layer's units: found before any training.
    config = SMALL.replace(pruning="unit")
    with pytest.raises(ValueError, match="'layer2' is the last layer"):
        lottery.run_trial(str(tmp_path / "trial1"), config, seed=1, progress=False)
    assert not os.path.exists(paths.run(str(tmp_path / "trial1"), 0))


def test_random_pruning_differs_between_trials_and_repeats_within_one(tmp_path):
    config = SMALL.replace(prune_scores="random", prune_seed=7, levels=1)
    masks = {}
    for trial, seed in (("a", 1), ("b", 5), ("c", 1)):
        masks[trial] = lottery.run_trial(str(tmp_path / trial), config, seed=seed,
                                         progress=False)[1].masks
    assert not np.array_equal(masks["a"]["layer0"], masks["b"]["layer0"])
    np.testing.assert_array_equal(masks["a"]["layer0"], masks["c"]["layer0"])
    # One-shot runs of a trial draw the same scores as its iterative levels.
    shots = oneshot.run_oneshot(str(tmp_path / "a"), config, [1], seed=1, progress=False)
    np.testing.assert_array_equal(shots[1].masks["layer0"], masks["a"]["layer0"])
