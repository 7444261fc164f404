"""Keras models through the library's other runners: one-shot pruning, populations."""

import functools
import os
import sys

import keras
import numpy as np
import pytest

from conftest import register_synthetic_dataset
from lottery_ticket.experiments import components, oneshot
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths, pruning, save_restore
from lottery_ticket.foundations.keras_layers import BN_PARTS, bn_key

sys.path.insert(0, os.path.dirname(__file__))


def bn_mlp(input_shape):
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(16, name="hidden")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="norm")(x))
    return keras.Model(inputs, keras.layers.Dense(10, name="output")(x))


def test_oneshot_prunes_a_keras_model_and_resets_batch_norm_as_lottery_levels(tmp_path):
    components.MODELS.register("bn_mlp_oneshot_test",
                               components.keras_builder(bn_mlp, "bn_mlp_oneshot_test"),
                               replace=True)
    config = ExperimentConfig().replace(
        dataset=register_synthetic_dataset(), data_location="unused", validation_size=0,
        model="bn_mlp_oneshot_test", layers=(), batch_size=20,
        training_len=("iterations", 6), test_interval=6, validate_interval=0,
        prune_percents={"hidden": 0.2, "output": 0.1}, levels=2)
    trial = str(tmp_path / "trial1")
    results = oneshot.run_oneshot(trial, config, [1, 2], seed=0, progress=False)
    level0 = paths.run(trial, 0)
    initial0 = save_restore.restore_network(paths.initial(level0))
    final0 = save_restore.restore_network(paths.final(level0))
    assert np.any(final0[bn_key("norm", "moving_mean")] != 0)  # training moved it
    for level in (1, 2):
        run = paths.run(trial, level, "oneshot")
        initial = save_restore.restore_network(paths.initial(run))
        for part in BN_PARTS:  # reset to level 0's initial values, as lottery levels do
            np.testing.assert_array_equal(initial[bn_key("norm", part)],
                                          initial0[bn_key("norm", part)])
        sizes = {"hidden": 784 * 16, "output": 16 * 10}
        for name, size in sizes.items():
            kept = size
            for _ in range(level):
                kept -= pruning.count_to_prune(config["prune_percents"][name], kept)
            masks = results[level].masks[name]
            assert int(masks.sum()) == kept
            assert np.all(results[level].final[name][masks == 0] == 0.0)
            np.testing.assert_array_equal(initial[name], initial0[name] * masks)


@pytest.mark.slow
def test_vgg16_trains_two_levels_with_exact_counts_and_pruned_weights_zero(tmp_path,
                                                                          fashion_mnist_dir):
    from lottery_ticket.cifar10_resnet import constants
    from lottery_ticket.experiments import lottery
    from test_resnet import write_fashion_subset
    data = tmp_path / "data"
    data.mkdir()
    write_fashion_subset(str(data), fashion_mnist_dir, 16, 8)
    config = constants.CONFIGS["vgg16"].replace(
        dataset="fashion_mnist_32", data_location=str(data), levels=2, batch_size=4, augment="",
        training_len=("iterations", 2), test_interval=2, lr_drops="1",
        lr_drop_unit="iterations")
    results = lottery.run_trial(str(tmp_path / "trial"), config, seed=0, progress=False)
    convolutions = constants.prunable_layers("vgg16")
    total = sum(results[0].masks[name].size for name in convolutions)
    kept = total
    for level in (1, 2):
        kept -= pruning.count_to_prune(0.2, kept)  # one global pool of the 13 convolutions
        masks, final = results[level].masks, results[level].final
        assert sum(int(masks[name].sum()) for name in convolutions) == kept
        assert masks["output"].all()
        for name in convolutions + ["output"]:
            assert np.all(final[name][masks[name] == 0] == 0.0), (level, name)
            assert np.any(final[name][masks[name] == 1] != 0.0)
        assert np.all(results[level].masks["conv3"] <= results[level - 1].masks["conv3"])


def residual_no_bn(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    y = keras.layers.Conv2D(4, 3, padding="same", name="block")(x)
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.Dropout(0.25)(keras.layers.Flatten()(keras.layers.MaxPooling2D()(x)))
    return keras.Model(inputs, keras.layers.Dense(10, name="head")(x))


def mlp_no_bn(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Dense(12, activation="relu", name="hidden")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, keras.layers.Dense(10, name="head")(x))


RESIDUAL_SHAPES = {"stem": (3, 3, 1, 4), "block": (3, 3, 4, 4), "head": (64, 10)}
MLP_SHAPES = {"hidden": (64, 12), "head": (12, 10)}


# The residual model (dropout) trains on the stacked engine member by member, the
# dense one batched (population.batched_reason says which).
@pytest.mark.parametrize("architecture, shapes, batched", [
    (residual_no_bn, RESIDUAL_SHAPES, False), (mlp_no_bn, MLP_SHAPES, True)])
def test_a_population_of_keras_models_without_bn_equals_their_single_runs(
        tmp_path, architecture, shapes, batched):
    import copy
    import tensorflow as tf
    from lottery_ticket.foundations import population, trainer
    from lottery_ticket.foundations.dataset_base import DatasetBase
    from lottery_ticket.foundations.keras_model import KerasModel
    rng = np.random.default_rng(0)
    x = rng.random((80, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 80).astype(np.int32)
    dataset = DatasetBase((x, y), 10, (x[:20], y[:20]), train_order_seed=0)
    other = copy.copy(dataset)
    other.train_order_seed = 1
    masks = {name: (np.random.RandomState(3).rand(*shape) > 0.5).astype(np.float32)
             for name, shape in shapes.items()}

    def members():
        return [KerasModel(architecture(), masks=masks, seed=s) for s in (0, 1)]

    reason = population.batched_reason(members()[0].build((8, 8, 1)), (8, 8, 1))
    assert (reason is None) == batched
    sgd = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.1)
    ours = trainer.train_population([dataset, other], members(), sgd, ("iterations", 6),
                                    [str(tmp_path / f"p{k}") for k in range(2)],
                                    test_interval=3, progress=False, save_summaries=False)
    for k, (data, model) in enumerate(zip([dataset, other], members())):
        theirs = trainer.train(data, model, sgd, ("iterations", 6), str(tmp_path / f"s{k}"),
                               test_interval=3, progress=False, save_summaries=False,
                               xla="off")
        assert sorted(ours[k].final) == sorted(theirs.final) == sorted(shapes)
        for name in theirs.final:
            np.testing.assert_array_equal(ours[k].initial[name], theirs.initial[name])
            assert np.all(ours[k].final[name][masks[name] == 0] == 0.0)
            np.testing.assert_allclose(ours[k].final[name], theirs.final[name], rtol=1e-5,
                                       atol=1e-6)
        np.testing.assert_allclose(ours[k].metrics["train"]["loss"],
                                   theirs.metrics["train"]["loss"], rtol=1e-5)
    assert not np.array_equal(ours[0].final["head"], ours[1].final["head"])
