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
