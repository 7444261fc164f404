"""The Keras adapter: a user's Keras model trained, pruned and reset as a ModelBase."""

import functools
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from lottery_ticket.foundations import paths, save_restore, trainer
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.keras_model import KerasModel, bn_key


def residual_model(seed: int = 0) -> keras.Model:
    """A small functional model with BN, a residual Add, pooling and dropout."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU()(x)
    y = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="block")(x)
    y = keras.layers.BatchNormalization(name="block_bn")(y)
    x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.25)(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs)


def image_dataset(seed: int = 0, count: int = 64) -> DatasetBase:
    rng = np.random.RandomState(seed)
    x = rng.rand(count, 12, 12, 1).astype(np.float32)
    y = (x[:, :6].mean(axis=(1, 2, 3)) * 8).astype(np.int32) % 4
    return DatasetBase((x, y), 16, test=(x[:32], y[:32]), train_order_seed=seed)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(3, 3, name="sub_conv")
        self.bn = keras.layers.BatchNormalization(name="sub_bn")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.out = keras.layers.Dense(2, name="sub_out")

    def call(self, inputs, training=False):
        return self.out(self.pool(self.bn(self.conv(inputs), training=training)))


def test_all_ones_masks_give_the_keras_models_outputs():
    x = np.random.RandomState(1).rand(5, 12, 12, 1).astype(np.float32)
    functional = residual_model()
    ones = {"stem": np.ones((3, 3, 1, 6)), "block": np.ones((3, 3, 6, 6)),
            "head": np.ones((216, 4))}
    model = KerasModel(functional, masks=ones)
    np.testing.assert_array_equal(model(x).numpy(), functional(x, training=False).numpy())
    assert model.layer_names == ["stem", "block", "head"] and model.output_layer == "head"
    sequential = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                                   keras.layers.Dense(3, activation="softmax")])
    rows = np.random.RandomState(2).rand(4, 6).astype(np.float32)
    np.testing.assert_array_equal(KerasModel(sequential)(rows).numpy(),
                                  sequential(rows).numpy())
    subclassed = Subclassed()
    subclassed(x)
    np.testing.assert_allclose(KerasModel(subclassed)(x).numpy(),
                               subclassed(x, training=False).numpy(), rtol=0, atol=1e-6)


def test_unsupported_layers_are_named_in_one_error():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.DepthwiseConv2D(3, name="depthwise")(inputs)
    x = keras.layers.LayerNormalization(name="norm")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(ValueError, match=r"depthwise \(DepthwiseConv2D.*norm \(LayerNorm"):
        KerasModel(model)
    with pytest.raises(ValueError, match="not built"):
        KerasModel(keras.Sequential([keras.layers.Dense(2)]))


def test_seeded_weights_are_reproducible_and_keras_weights_are_kept():
    functional = residual_model()
    first, again = KerasModel(functional, seed=3), KerasModel(functional, seed=3)
    other = KerasModel(functional, seed=4)
    for model in (first, again, other):
        model.build((12, 12, 1))
    for name in first.layer_names:
        np.testing.assert_array_equal(first.weights[name], again.weights[name])
        assert not np.array_equal(first.weights[name], other.weights[name])
    kept = KerasModel(functional).build((12, 12, 1))
    np.testing.assert_array_equal(kept.weights["head"], functional.get_layer("head").kernel.numpy())


@pytest.mark.parametrize("decay", ["l2", "decoupled"])
def test_masked_weights_stay_zero_and_batch_norm_trains_and_resets(tmp_path, decay):
    functional = residual_model()
    base = KerasModel(functional, seed=5).build((12, 12, 1))
    rng = np.random.RandomState(0)
    masks = {name: (rng.rand(*value.shape) > 0.5).astype(np.float32)
             for name, value in base.weights.items()}
    model = KerasModel(functional, masks=masks, seed=5,
                       weight_decay=1e-2 if decay == "l2" else 0.0)
    if decay == "l2":
        optimizer = functools.partial(keras.optimizers.SGD, 0.1, momentum=0.9, nesterov=True)
    else:
        optimizer = functools.partial(keras.optimizers.SGD, 0.1, momentum=0.9,
                                      weight_decay=1e-2)
    dataset = image_dataset()
    result = trainer.train(dataset, model, optimizer, ("iterations", 12),
                           str(tmp_path / "run"), save_summaries=False, test_interval=6,
                           progress=False, xla="off")
    for name, mask in masks.items():
        final = model.kernel_variables[name].numpy()
        assert np.all(final[mask == 0] == 0.0), name
        assert np.all(result[1][name][mask == 0] == 0.0)
    moving = model.batch_norm_variables[bn_key("stem_bn", "moving_mean")].numpy()
    assert np.any(moving != 0.0)  # training moved the statistics from their zeros
    initial = save_restore.restore_network(paths.initial(str(tmp_path / "run")))
    final = save_restore.restore_network(paths.final(str(tmp_path / "run")))
    for part in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert bn_key("block_bn", part) in initial and bn_key("block_bn", part) in final
    np.testing.assert_array_equal(final[bn_key("stem_bn", "moving_mean")], moving)
    # A level's model from the same seed starts at level 0's BN values (not the trained).
    reset = KerasModel(functional, presets=result[0], masks=masks, seed=5)
    reset.build((12, 12, 1))
    for key, value in reset.batch_norm_variables.items():
        np.testing.assert_array_equal(value.numpy(), initial[key])
    np.testing.assert_array_equal(initial[bn_key("stem_bn", "moving_mean")], np.zeros(6))
    # A rewind point (the whole network, BN included) restores its BN values.
    rewound = KerasModel(functional, presets=final, masks=masks, seed=9).build((12, 12, 1))
    for key, value in rewound.batch_norm_variables.items():
        np.testing.assert_array_equal(value.numpy(), final[key])
    # Evaluation uses the moving statistics: the trained values in the Keras model agree.
    x = dataset.test[0][:8]
    np.testing.assert_allclose(rewound(x).numpy(), model(x).numpy(), atol=1e-5)


def test_compiled_functions_are_reused_for_an_equal_keras_model(tmp_path, monkeypatch):
    from lottery_ticket.foundations.training import single
    made = []

    class Counted(single.CompiledSteps):
        def __init__(self, *args, **kwargs):
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(single, "CompiledSteps", Counted)
    dataset = image_dataset()
    optimizer = functools.partial(keras.optimizers.SGD, 0.05)
    models = [KerasModel(residual_model(), seed=s) for s in (1, 2)]
    for index, model in enumerate(models):
        trainer.train(dataset, model, optimizer, ("iterations", 4), str(tmp_path / str(index)),
                      save_summaries=False, test_interval=4, progress=False, xla="off")
    # The second run trained in the first's traced copy; its values came back to it.
    assert models[1].trace_key() == models[0].trace_key()
    assert not np.array_equal(models[0].weights["head"], models[1].weights["head"])
    assert os.path.exists(tmp_path / "1" / "done.json")
    assert len(made) == 1  # traced once, for both runs


def test_augmentation_is_reproducible_from_seed_and_step():
    model = KerasModel(residual_model(), seed=1, augment="crop_flip").build((12, 12, 1))
    x = tf.constant(np.random.RandomState(0).rand(4, 12, 12, 1).astype(np.float32))
    model.set_training_step(7)
    first = model.augmented_inputs(x).numpy()
    model.set_training_step(7)
    np.testing.assert_array_equal(model.augmented_inputs(x).numpy(), first)
    model.set_training_step(8)
    assert not np.array_equal(model.augmented_inputs(x).numpy(), first)
    # Shifts of at most 4 pixels with zero padding: every output pixel is an input's or 0.
    assert set(np.round(first.ravel(), 6)) <= set(np.round(x.numpy().ravel(), 6)) | {0.0}


def test_made_up_layer_names_are_the_same_for_every_build():
    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                 keras.layers.Dropout(0.1), keras.layers.Dense(2, name="out")])
    first, second = build(), build()
    assert first.layers[0].name != second.layers[0].name  # Keras counts on
    names = [KerasModel(model, seed=0).build((4,)).layer_names for model in (first, second)]
    assert names == [["dense", "out"], ["dense", "out"]]


def test_a_rewound_trial_resets_batch_norm_to_the_rewind_point(tmp_path):
    from conftest import register_synthetic_dataset
    from lottery_ticket.experiments import components, lottery
    from lottery_ticket.experiments.config import ExperimentConfig

    def build(input_shape):
        inputs = keras.Input(input_shape)
        x = keras.layers.Dense(16, name="hidden")(inputs)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="norm")(x))
        return keras.Model(inputs, keras.layers.Dense(10, name="output")(x))

    components.MODELS.register("bn_mlp_test", components.keras_builder(build, "bn_mlp_test"),
                               replace=True)
    config = ExperimentConfig().replace(
        dataset=register_synthetic_dataset(), data_location="unused", validation_size=0,
        model="bn_mlp_test", layers=(), batch_size=20, training_len=("iterations", 6),
        test_interval=6, validate_interval=0, rewind_iteration=2,
        prune_percents={"hidden": 0.2, "output": 0.1}, levels=1)
    trial = lottery.run_trial(str(tmp_path / "trial"), config, seed=0)
    snapshot = save_restore.restore_network(paths.rewind(paths.run(str(tmp_path / "trial"), 0), 2))
    level1 = save_restore.restore_network(paths.initial(paths.run(str(tmp_path / "trial"), 1)))
    for part in ("gamma", "beta", "moving_mean", "moving_variance"):
        np.testing.assert_array_equal(level1[bn_key("norm", part)], snapshot[bn_key("norm", part)])
    assert np.any(snapshot[bn_key("norm", "moving_mean")] != 0)  # the rewind point's, not 0
    assert (trial[1].final["hidden"][trial[1].masks["hidden"] == 0] == 0).all()
    # The analysis reads the run's kernels (the BN files beside them are not layers).
    from lottery_ticket.analysis import reader
    ticket = reader.load_ticket(paths.run(str(tmp_path / "trial"), 1))
    assert sorted(ticket["initial"]) == sorted(ticket["masks"]) == ["hidden", "output"]


def test_populations_refuse_a_keras_model_with_batch_norm(tmp_path):
    models = [KerasModel(residual_model(), seed=s) for s in (1, 2)]
    with pytest.raises(ValueError, match="population"):
        trainer.train_population(image_dataset(), models,
                                 functools.partial(keras.optimizers.SGD, 0.1),
                                 ("iterations", 2), [str(tmp_path / "a"), str(tmp_path / "b")],
                                 progress=False, save_summaries=False)


def test_xla_and_sparse_layers_train_a_keras_model_as_the_plain_loop_does(tmp_path):
    from conftest import synthetic_dataset
    mlp = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"),
                            keras.layers.Dense(10)])
    base = KerasModel(mlp, seed=0).build((784,))
    rng = np.random.RandomState(0)
    masks = {"dense": (rng.rand(784, 64) < 0.02).astype(np.float32),
             "dense_1": np.ones((64, 10), np.float32)}
    trained = {}
    for xla in ("on", "off"):
        model = KerasModel(mlp, masks=masks, seed=0)
        result = trainer.train(synthetic_dataset(), model,
                               functools.partial(keras.optimizers.SGD, 0.1, momentum=0.9),
                               ("iterations", 10), str(tmp_path / xla), save_summaries=False,
                               test_interval=10, progress=False, xla=xla)
        trained[xla] = (model.weights, result.record["xla"])
    assert trained["on"][1]["sparse_layers"] == ["dense"]  # survivors as a vector, with XLA
    for name in masks:
        np.testing.assert_allclose(trained["on"][0][name], trained["off"][0][name], atol=1e-6)
        assert np.all(trained["on"][0][name][masks[name] == 0] == 0)
    assert base.layer_names == ["dense", "dense_1"]
