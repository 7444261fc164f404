"""Populations on the sparse path: very sparse dense layers train as one vector of
all members' survivors (training.stacked_sparse), under XLA, and each member
still equals its own single run."""

import copy
import functools
import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, register_synthetic_dataset, synthetic_dataset
from lottery_ticket.datasets.dataset_mnist import DatasetMnist
from lottery_ticket.experiments import lockstep, lottery
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, population, runs, save_restore, trainer
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training import stacked
from lottery_ticket.foundations.training.stacked_sparse import StackedSparseLayer

MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)
SHAPES = {"layer0": (784, 32), "layer1": (32, 16), "layer2": (16, 10)}
LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
LENET_SHAPES = {"layer0": (784, 300), "layer1": (300, 100), "layer2": (100, 10)}
# Short: a network this sparse on Fashion-MNIST sits near chance for a while, and
# after a few dozen steps a unit's pre-activation near 0 can take the other side
# under another summation order (the sparse path's K = 1 against trainer.train
# without XLA drifted from 1e-9 to 1e-5 between steps 10 and 20 for one member),
# which no tolerance of float rounding covers.
ITERATIONS = 10
SNAPSHOT = 5


def _masks(seed, keep, output_keep=None, shapes=None):
    """Random masks keeping `keep` of each kernel (`output_keep` of the last),
    rounded, at least one weight per layer."""
    rng = np.random.default_rng(seed)
    masks = {}
    for name, shape in (shapes or SHAPES).items():
        fraction = output_keep if name == "layer2" and output_keep is not None else keep
        masks[name] = _keep_some(np.ones(shape, np.float32), fraction, rng)
    return masks


def _keep_some(mask, fraction, rng):
    """`mask` keeping `fraction` of its ones (rounded, at least one), at random."""
    ones = np.flatnonzero(mask)
    kept = rng.permutation(ones)[:max(1, int(round(fraction * len(ones))))]
    result = np.zeros(mask.size, np.float32)
    result[kept] = 1
    return result.reshape(mask.shape)


def _done(directory):
    with open(paths.done(str(directory))) as f:
        return json.load(f)


def _quiet():
    return dict(progress=False, save_summaries=False)


@pytest.fixture(scope="module")
def fashion(fashion_mnist_dir):
    base = DatasetMnist(fashion_mnist_dir, train_order_seed=0, validation_size=2000)
    other = copy.copy(base)
    other.train_order_seed = 1
    return [base, other]


def _fashion_members(keep):
    # LeNet-300-100s (which learn something in a few steps even this sparse, so
    # that no prediction is a near tie that rounding could flip). Member 1 keeps
    # 30% of its output layer (the paper prunes it at half the rate): that layer
    # stays a batched matmul for both while the others run sparse.
    return [ModelFc(LENET, seed=1, masks=_masks(1, keep, shapes=LENET_SHAPES)),
            ModelFc(LENET, seed=2, masks=_masks(2, keep, output_keep=0.3,
                                                shapes=LENET_SHAPES))]


def _trained(fashion, root, keep):
    kwargs = dict(test_interval=5, validate_interval=5, snapshot_iterations=(SNAPSHOT,),
                  **_quiet())
    sparse_models = _fashion_members(keep)
    sparse = population.train_population(
        fashion, sparse_models, MOMENTUM, ("iterations", ITERATIONS),
        [str(root / f"sparse{k}") for k in range(2)], jit_compile=True, **kwargs)
    dense = population.train_population(
        fashion, _fashion_members(keep), MOMENTUM, ("iterations", ITERATIONS),
        [str(root / f"dense{k}") for k in range(2)], jit_compile=False, **kwargs)
    singles = [trainer.train(dataset, model, MOMENTUM, ("iterations", ITERATIONS),
                             str(root / f"single{k}"), xla="off", **kwargs)
               for k, (dataset, model) in enumerate(zip(fashion, _fashion_members(keep)))]
    return sparse, dense, singles, sparse_models


@pytest.fixture(scope="module")
def trained_sparse(fashion, tmp_path_factory):
    """1.5%: sparse training and evaluation through the survivors."""
    return _trained(fashion, tmp_path_factory.mktemp("sparse_population"), 0.015)


@pytest.fixture(scope="module")
def trained_sparse_dense_evaluation(fashion, tmp_path_factory):
    """2.8%: sparse training, evaluation of the written-back kernels."""
    return _trained(fashion, tmp_path_factory.mktemp("sparse_population_3"), 0.028)


def _assert_members_equal(ours, theirs):
    for name in theirs.initial:
        np.testing.assert_array_equal(ours.initial[name], theirs.initial[name])
        np.testing.assert_allclose(ours.final[name], theirs.final[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert set(ours.snapshots[SNAPSHOT]) == set(theirs.snapshots[SNAPSHOT])
    for name, values in theirs.snapshots[SNAPSHOT].items():
        np.testing.assert_allclose(ours.snapshots[SNAPSHOT][name], values, rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    assert set(ours.metrics) == set(theirs.metrics) == {"train", "test", "validate"}
    for split in theirs.metrics:
        assert ours.metrics[split]["iteration"] == theirs.metrics[split]["iteration"]
        for what in ("loss", "accuracy"):
            np.testing.assert_allclose(ours.metrics[split][what], theirs.metrics[split][what],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{split} {what}")


@pytest.mark.slow
@pytest.mark.parametrize("which", ["trained_sparse", "trained_sparse_dense_evaluation"])
def test_sparse_members_equal_single_runs_and_the_dense_population(which, request):
    sparse, dense, singles, models = request.getfixturevalue(which)
    evaluates = which == "trained_sparse"
    for k, (ours, theirs, batched) in enumerate(zip(sparse, singles, dense)):
        xla = _done(ours.output_dir)["xla"]
        assert xla == {"setting": "on", "training": True, "evaluation": evaluates,
                       "sparse_layers": ["layer0", "layer1"]}
        assert _done(batched.output_dir)["xla"]["sparse_layers"] == []
        _assert_members_equal(ours, theirs)
        _assert_members_equal(ours, batched)
        # The model holds the trained values, as after trainer.train.
        whole = models[k].get_current_weights(include_biases=True)
        for name in ours.final:
            np.testing.assert_array_equal(whole[name], ours.final[name])


@pytest.mark.slow
def test_sparse_pruned_weights_stay_exactly_zero_and_snapshots_are_written(trained_sparse):
    sparse, _, _, models = trained_sparse
    for ours, model in zip(sparse, models):
        for name, mask in model.masks.items():
            assert not ours.final[name][mask == 0].any()
            assert not ours.snapshots[SNAPSHOT][name][mask == 0].any()
            # The raw kernel the population wrote back, not only the masked
            # (effective) weights the results hold.
            assert not model.kernel_variables[name].numpy()[mask == 0].any()
            # The survivors trained (and the snapshot is not the final network). Not
            # most of them: this sparse, in 10 steps, many get no gradient (border
            # pixels are 0 in every example seen; many units are dead ReLUs), in
            # the single runs as here.
            assert (ours.final[name][mask == 1] != ours.initial[name][mask == 1]).mean() > 0.05
            assert (ours.final[name][mask == 1]
                    != ours.snapshots[SNAPSHOT][name][mask == 1]).mean() > 0.05
        saved = save_restore.restore_network(paths.rewind(ours.output_dir, SNAPSHOT))
        assert set(saved) == set(ours.snapshots[SNAPSHOT])
        for name, values in saved.items():
            np.testing.assert_array_equal(values, ours.snapshots[SNAPSHOT][name])
        final = save_restore.restore_network(paths.final(ours.output_dir))
        for name in ours.final:
            np.testing.assert_array_equal(final[name], ours.final[name])


def _layers_of(masks_per_member, jit_compile=True, dataset=None):
    dataset = dataset or synthetic_dataset(validate=False)
    models = [ModelFc(SMALL_FC, seed=k, masks=m).build([784])
              for k, m in enumerate(masks_per_member)]
    engine = stacked.stacked_engine(dataset, models, MOMENTUM(), jit_compile)
    try:
        return engine.sparse_layers, engine.jit_compile
    finally:
        engine.finish(models, 0)


def test_sparse_layers_are_those_below_the_threshold_in_every_member(monkeypatch):
    low = _masks(0, 0.02)
    assert _layers_of([low, low]) == (("layer0", "layer1", "layer2"), True)
    # One member above 3% in layer0: that layer stays dense for all.
    above = dict(low, layer0=_masks(1, 0.2)["layer0"])
    assert _layers_of([low, above]) == (("layer1", "layer2"), True)
    # An unmasked member keeps every layer dense (its mask is all ones).
    plain = ModelFc(SMALL_FC, seed=5).build([784]).masks
    assert _layers_of([low, {name: np.ones_like(m) for name, m in plain.items()}]) == ((), True)
    # Never without XLA, nor where 'auto' means off (as in this test suite)...
    assert _layers_of([low, low], jit_compile=False) == ((), False)
    assert _layers_of([low, low], jit_compile=None) == ((), False)
    # ...but 'auto' outside it turns XLA on for a sparse population.
    monkeypatch.delenv("LOTTERY_TICKET_XLA_AUTO", raising=False)
    assert _layers_of([low, low], jit_compile=None) == (("layer0", "layer1", "layer2"), True)
    # A bad setting of the variable is refused, also for sparse masks.
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "sometimes")
    with pytest.raises(ValueError, match="LOTTERY_TICKET_XLA_AUTO"):
        _layers_of([low, low], jit_compile=None)
    monkeypatch.delenv("LOTTERY_TICKET_XLA_AUTO")
    monkeypatch.setattr(stacked, "SPARSE_BELOW", 0.0)
    assert _layers_of([low, low], jit_compile=None) == ((), False)


def test_a_population_above_the_threshold_records_no_sparse_layers(tmp_path):
    dataset = synthetic_dataset(validate=False)
    models = [ModelFc(SMALL_FC, seed=k, masks=_masks(k, 0.3)) for k in range(2)]
    population.train_population(dataset, models, MOMENTUM, ("iterations", 5),
                                [str(tmp_path / str(k)) for k in range(2)], jit_compile=True,
                                test_interval=5, **_quiet())
    assert _done(tmp_path / "0")["xla"] == {"setting": "on", "training": True,
                                           "evaluation": False, "sparse_layers": []}


def test_the_survivor_vector_is_the_block_diagonal_super_layer():
    rng = np.random.default_rng(0)
    members, inputs, units = 3, 5, 4
    masks = (rng.random((members, inputs, units)) < 0.3).astype(np.float32)
    kernels = rng.standard_normal((members, inputs, units)).astype(np.float32) * masks
    count = int(masks.sum())
    layer = StackedSparseLayer("dense", members, inputs, units, count + 7)
    layer.load(kernels, masks)
    x = rng.standard_normal((members * 6, inputs)).astype(np.float32)
    expected = np.einsum("kbi,kio->kbo", x.reshape(members, 6, inputs), kernels)
    np.testing.assert_allclose(layer.product(tf.constant(x)).numpy(), expected, rtol=1e-5,
                               atol=1e-6)
    shared = x[:6]
    np.testing.assert_allclose(layer.shared_product(tf.constant(shared.T)).numpy(),
                               np.einsum("bi,kio->kbo", shared, kernels), rtol=1e-5, atol=1e-6)
    target = tf.Variable(tf.fill([members, inputs, units], 9.0))
    layer.store(target)
    np.testing.assert_array_equal(target.numpy(), kernels)  # pruned weights exactly 0
    assert layer.finite().numpy().all()
    layer.values.assign(tf.tensor_scatter_nd_update(layer.values, [[count - 1]], [np.nan]))
    assert layer.finite().numpy().tolist() == [True, True, False]
    with pytest.raises(RuntimeError, match="survivors"):
        StackedSparseLayer("dense", members, inputs, units, count - 1).load(kernels, masks)


def _population(dataset, root, masks, seeds=(0, 1), iterations=20, **params):
    models = [ModelFc(SMALL_FC, seed=s, masks=m) for s, m in zip(seeds, masks)]
    return population.train_population(
        dataset, models, MOMENTUM, ("iterations", iterations),
        [str(root / str(k)) for k in range(len(models))], jit_compile=True,
        **dict(dict(test_interval=10, **_quiet()), **params))


def test_same_seeds_give_the_same_bits_on_the_sparse_path(tmp_path):
    dataset = synthetic_dataset(validate=False)
    masks = [_masks(3, 0.015), _masks(4, 0.015)]
    first = _population(dataset, tmp_path / "a", masks)
    second = _population(dataset, tmp_path / "b", masks)
    assert _done(first[0].output_dir)["xla"]["sparse_layers"] == ["layer0", "layer1", "layer2"]
    for ours, theirs in zip(first, second):
        for name in ours.final:
            np.testing.assert_array_equal(ours.final[name], theirs.final[name])
        assert ours.metrics == theirs.metrics


def test_a_later_level_reuses_the_compiled_sparse_engine(tmp_path):
    dataset = synthetic_dataset(validate=False)
    level1 = [_masks(5, 0.015), _masks(6, 0.015)]
    rng = np.random.default_rng(7)
    # The next level keeps about 80% of each survivor set (nested, as pruning does).
    level2 = [{name: _keep_some(m, 0.8, rng) for name, m in masks.items()}
              for masks in level1]
    first = _population(dataset, tmp_path / "1", level1)
    engine = stacked.ENGINES.engines(dataset)[-1]
    traces = engine.training_tracing_count()
    sizes = engine.sparse_sizes
    second = _population(dataset, tmp_path / "2", level2)
    assert stacked.ENGINES.engines(dataset)[-1] is engine
    assert engine.training_tracing_count() == traces == 1
    assert engine.sparse_sizes == sizes
    assert sum(int(m["layer0"].sum()) for m in level2) < sizes["layer0"]
    assert _done(tmp_path / "2" / "0")["compile_seconds"] == 0
    assert _done(tmp_path / "1" / "0")["compile_seconds"] > 0
    # The reused engine trained the level as a fresh one does.
    fresh = _population(synthetic_dataset(validate=False), tmp_path / "fresh", level2)
    for ours, theirs in zip(second, fresh):
        for name in ours.final:
            np.testing.assert_array_equal(ours.final[name], theirs.final[name])
        assert ours.metrics == theirs.metrics
    del first


def test_a_long_population_compiles_its_own_sparse_engine_rather_than_reuse_a_padded_one(
        tmp_path, monkeypatch):
    from lottery_ticket.foundations.training import sparse
    dataset = synthetic_dataset(validate=False)
    level1 = [_masks(5, 0.015), _masks(6, 0.015)]
    rng = np.random.default_rng(7)
    level2 = [{name: _keep_some(m, 0.8, rng) for name, m in masks.items()}
              for masks in level1]
    _population(dataset, tmp_path / "1", level1)
    padded = stacked.ENGINES.engines(dataset)[-1]
    # A compile that costs next to nothing: the short population's padding outweighs
    # it, as a run of millions of iterations would weigh it (train_population
    # passes its length on), and it compiles an engine of its own survivors' size.
    monkeypatch.setattr(sparse, "SPARSE_COMPILE_SECONDS", 1e-9)
    _population(dataset, tmp_path / "2", level2)
    own = stacked.ENGINES.engines(dataset)[-1]
    assert own is not padded
    kept = {name: sum(int(m[name].sum()) for m in level2) for name in own.sparse_sizes}
    assert own.sparse_sizes == {name: sparse.bucket(count) for name, count in kept.items()}
    assert own.sparse_sizes != padded.sparse_sizes
    assert _done(tmp_path / "2" / "0")["compile_seconds"] > 0


def test_sparse_below_zero_keeps_a_population_dense_and_a_bad_one_is_refused(tmp_path):
    dataset = synthetic_dataset(validate=False)
    masks = [_masks(3, 0.015), _masks(4, 0.015)]
    dense = _population(dataset, tmp_path / "dense", masks, sparse_below=0)
    assert _done(dense[0].output_dir)["xla"]["sparse_layers"] == []
    # Above the populations' own threshold it means that threshold.
    wide = _population(dataset, tmp_path / "wide", masks, sparse_below=0.5)
    assert _done(wide[0].output_dir)["xla"]["sparse_layers"] == ["layer0", "layer1", "layer2"]
    with pytest.raises(ValueError, match="sparse_below is 2"):
        _population(dataset, tmp_path / "bad", masks, sparse_below=2)
    assert not (tmp_path / "bad").exists()


def test_a_diverging_sparse_member_is_recorded_and_the_other_finishes(tmp_path):
    dataset = synthetic_dataset(validate=False)
    huge = {name: np.full(shape, 1e18, np.float32) for name, shape in SHAPES.items()}
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
    masks = [_masks(8, 0.02), _masks(9, 0.02)]

    def members():
        return [ModelFc(SMALL_FC, seed=0, masks=masks[0]),
                ModelFc(SMALL_FC, seed=1, masks=masks[1], presets=huge)]

    dirs = [str(tmp_path / "ok"), str(tmp_path / "bad")]
    with pytest.raises(population.PopulationDivergedError) as raised:
        population.train_population(dataset, members(), sgd, ("iterations", 20), dirs,
                                    test_interval=10, jit_compile=True, **_quiet())
    results = raised.value.results
    assert isinstance(results[0], trainer.TrainResult) and runs.is_complete(dirs[0])
    assert _done(dirs[0])["xla"]["sparse_layers"] == ["layer0", "layer1", "layer2"]
    assert isinstance(results[1], runs.DivergedError) and not runs.is_complete(dirs[1])
    with pytest.raises(runs.DivergedError) as single:
        trainer.train(dataset, members()[1], sgd, ("iterations", 20), str(tmp_path / "one"),
                      test_interval=10, xla="on", **_quiet())
    ours, theirs = runs.read_diverged(dirs[1]), runs.read_diverged(str(tmp_path / "one"))
    assert (ours["iteration"], ours["reason"]) == (theirs["iteration"], theirs["reason"])
    assert results[1].iteration == single.value.iteration
    alone = trainer.train(dataset, members()[0], sgd, ("iterations", 20),
                          str(tmp_path / "alone"), test_interval=10, xla="on", **_quiet())
    for name in alone.final:
        np.testing.assert_allclose(results[0].final[name], alone.final[name], rtol=1e-5,
                                   atol=1e-6)
        assert not results[0].final[name][masks[0][name] == 0].any()


def test_the_chunked_split_holds_the_split_in_order():
    dataset = synthetic_dataset(validate=False)
    x, y = dataset.splits["test"]
    x_chunks, transposed, y_chunks, x_tail, transposed_tail, y_tail = cache_lib.chunked_split(
        dataset, "test", 64)
    assert x_chunks.shape == (3, 64, 784) and x_tail.shape == (8, 784)
    np.testing.assert_array_equal(np.concatenate([x_chunks.numpy().reshape(-1, 784),
                                                  x_tail.numpy()]), x)
    np.testing.assert_array_equal(np.concatenate([y_chunks.numpy().reshape(-1),
                                                  y_tail.numpy()]), y)
    np.testing.assert_array_equal(transposed.numpy()[1], x[64:128].T)
    np.testing.assert_array_equal(transposed_tail.numpy(), x[192:].T)
    assert cache_lib.chunked_split(dataset, "test", 64)[0] is x_chunks  # made once


@pytest.mark.slow
def test_a_lottery_population_trains_its_sparse_levels_sparsely(tmp_path, xla_auto):
    # Levels at 30%, 9%, 2.7% and 0.81% of the weights; --xla=auto as outside the suite.
    register_synthetic_dataset()
    config = ExperimentConfig().replace(
        dataset="synthetic_test", data_location="unused", validation_size=100,
        layers=[(32, "relu"), (16, "relu"), (10, None)], training_len=("iterations", 20),
        batch_size=20, test_interval=10, validate_interval=10, levels=4,
        prune_percents={"layer0": 0.7, "layer1": 0.7, "layer2": 0.7})
    seeds = [3, 4]
    results = lockstep.run_trials(str(tmp_path / "together"), config, seeds, progress=False)
    alone = {seed: lottery.run_trial(str(tmp_path / "alone" / f"trial{seed}"), config,
                                     seed=seed, progress=False) for seed in seeds}
    for seed, trial in zip(seeds, results):
        for level, result in trial.items():
            xla = _done(paths.run(paths.trial(str(tmp_path / "together"), seed), level))["xla"]
            assert xla["sparse_layers"] == (["layer0", "layer1", "layer2"] if level >= 3
                                            else []), (seed, level)
            assert xla["training"] is (level >= 3)  # dense populations: no XLA on a CPU
            assert xla["evaluation"] is (level == 4)
            for name, mask in result.masks.items():
                assert not result.final[name][mask == 0].any()
                np.testing.assert_array_equal(mask, alone[seed][level].masks[name])
                np.testing.assert_allclose(result.final[name], alone[seed][level].final[name],
                                           rtol=1e-5, atol=1e-6)
