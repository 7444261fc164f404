"""Exported tickets: plain Keras models that load and predict without this library."""

import functools
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lottery_ticket.experiments import export
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.keras_model import KerasModel

sys.path.insert(0, os.path.dirname(__file__))
from test_keras_model import Subclassed, image_dataset, residual_model  # noqa: E402

# Loads a .keras file and predicts with Keras alone: importing this library fails.
PLAIN_KERAS = textwrap.dedent("""
    import sys
    sys.modules["lottery_ticket"] = None
    import numpy as np, keras
    model = keras.models.load_model(sys.argv[1])
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
""")


def predict_in_plain_keras(path: str, x: np.ndarray, directory) -> np.ndarray:
    """The predictions of the .keras file at `path` in a Python without this library."""
    inputs, outputs = os.path.join(directory, "x.npy"), os.path.join(directory, "y.npy")
    np.save(inputs, x)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", PLAIN_KERAS, path, inputs, outputs], check=True,
                   env=environment, cwd=directory, capture_output=True)
    return np.load(outputs)


def test_exported_ticket_has_zeros_where_pruned_and_the_models_outputs(tmp_path):
    base = KerasModel(residual_model(), seed=2).build((12, 12, 1))
    rng = np.random.RandomState(1)
    masks = {name: (rng.rand(*value.shape) > 0.7).astype(np.float32)
             for name, value in base.weights.items()}
    model = KerasModel(residual_model(), masks=masks, seed=2)
    dataset = image_dataset()
    trainer.train(dataset, model, functools.partial(keras.optimizers.SGD, 0.1, momentum=0.9),
                  ("iterations", 8), str(tmp_path / "run"), save_summaries=False,
                  test_interval=8, progress=False, xla="off")
    exported = model.to_keras()
    for layer in exported.layers:
        if layer.name in masks:
            kernel = layer.kernel.numpy()
            assert np.all(kernel[masks[layer.name] == 0] == 0.0)
            assert np.count_nonzero(kernel) == np.count_nonzero(model.weights[layer.name])
    x = dataset.test[0]
    ours = model(x).numpy()
    np.testing.assert_allclose(exported(x, training=False).numpy(), ours, atol=1e-5)
    path = str(tmp_path / "ticket.keras")
    exported.save(path)
    # In a Python without this library: test_resnet's command-line test (slow).
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ours, atol=1e-5)


def test_export_refuses_to_overwrite_and_names_the_suffix(tmp_path):
    (tmp_path / "there.keras").write_text("x")
    with pytest.raises(ValueError, match=r"\.keras"):
        export.export_run(str(tmp_path), str(tmp_path / "ticket.h5"))
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_run(str(tmp_path), str(tmp_path / "there.keras"))


def test_compacted_ticket_is_smaller_with_the_same_outputs():
    keras.utils.set_random_seed(0)
    sequential = keras.Sequential([
        keras.Input((10, 10, 2)), keras.layers.Conv2D(6, 3, name="c0"),
        keras.layers.BatchNormalization(name="bn"), keras.layers.ReLU(),
        keras.layers.Conv2D(5, 3, name="c1"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(7, activation="relu", name="d0"),
        keras.layers.Dropout(0.5), keras.layers.Dense(3, name="out")])
    base = KerasModel(sequential, seed=1).build((10, 10, 2))
    masks = base.masks
    # Filters 1 and 4 of c0, filter 2 of c1 and units 0, 5 of d0 pruned: their kernel
    # columns and the next layer's inputs from them.
    masks["c0"][..., [1, 4]] = 0
    masks["c1"][:, :, [1, 4], :] = 0
    masks["c1"][..., 2] = 0
    masks["d0"].reshape(-1, 5, 7)[:, 2, :] = 0  # flatten: channel 2's rows
    masks["d0"][:, [0, 5]] = 0
    masks["out"][[0, 5], :] = 0
    ticket = KerasModel(sequential, presets=base.weights, masks=masks, seed=1).build((10, 10, 2))
    x = np.random.RandomState(0).rand(6, 10, 10, 2).astype(np.float32)
    masked = ticket.to_keras()
    smaller = export.compact(masked)
    kernels = {layer.name: layer.kernel.shape for layer in smaller.layers
               if hasattr(layer, "kernel")}
    assert kernels == {"c0": (3, 3, 2, 4), "c1": (3, 3, 4, 4), "d0": (36, 5), "out": (5, 3)}
    assert smaller.get_layer("bn").gamma.shape == (4,)
    np.testing.assert_allclose(smaller(x).numpy(), ticket(x).numpy(), atol=1e-5)
    assert smaller.count_params() < masked.count_params()
    with pytest.raises(ValueError, match="subclassed Subclassed.*functional"):
        export.compact(Subclassed())


def test_unit_pruning_compacts_lenet_to_its_surviving_units():
    from lottery_ticket.foundations import pruning
    lenet = keras.Sequential([keras.Input((20,)), keras.layers.Dense(30, activation="relu"),
                              keras.layers.Dense(10, activation="relu"),
                              keras.layers.Dense(3, name="output")])
    dense = KerasModel(lenet, seed=0).build((20,))
    masks = pruning.prune({"dense": 0.5, "dense_1": 0.5}, dense.masks, dense.weights,
                          selection="unit", order=dense.layer_names)
    ticket = KerasModel(lenet, presets=dense.weights, masks=masks, seed=0).build((20,))
    smaller = export.compact(ticket.to_keras())
    assert [layer.kernel.shape for layer in smaller.layers] == [(20, 15), (15, 5), (5, 3)]
    x = np.random.RandomState(0).rand(8, 20).astype(np.float32)
    np.testing.assert_allclose(smaller(x).numpy(), ticket(x).numpy(), atol=1e-5)


def test_unit_pruned_residual_model_compacts_across_the_add_with_the_same_outputs():
    from lottery_ticket.foundations import pruning
    base = KerasModel(residual_model(), seed=2).build((12, 12, 1))
    masks = pruning.prune({"stem": 0.5, "block": 0.5}, base.masks, base.weights,
                          selection="unit", order=base.layer_names)
    stem_alive = masks["stem"].reshape(-1, 6).any(axis=0)
    block_alive = masks["block"].reshape(-1, 6).any(axis=0)
    ticket = KerasModel(residual_model(), presets=base.weights, masks=masks,
                        seed=2).build((12, 12, 1))
    masked = ticket.to_keras()
    smaller = export.compact(masked)
    # The Add joins stem's and block's channels: only a channel both pruned goes.
    # A channel only stem pruned is still read by the head through the Add (its
    # BN(bias) constant is not 0), one only block pruned by block's successor: kept.
    kept = stem_alive | block_alive
    assert 0 < kept.sum() < 6
    assert smaller.get_layer("stem").kernel.shape == (3, 3, 1, int(kept.sum()))
    assert smaller.get_layer("block").kernel.shape == (3, 3, int(kept.sum()), int(kept.sum()))
    assert smaller.get_layer("block_bn").moving_mean.shape == (int(kept.sum()),)
    np.testing.assert_array_equal(smaller.get_layer("stem_bn").beta.numpy(),
                                  masked.get_layer("stem_bn").beta.numpy()[kept])
    assert smaller.get_layer("head").kernel.shape == (36 * int(kept.sum()), 4)
    assert smaller.count_params() < masked.count_params()
    x = np.random.RandomState(0).rand(6, 12, 12, 1).astype(np.float32)
    np.testing.assert_allclose(smaller(x).numpy(), masked(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(smaller(x).numpy(), ticket(x).numpy(), atol=1e-5)


def test_unit_pruned_resnet20_compacts_its_inner_block_filters():
    from lottery_ticket.foundations import keras_architectures, pruning
    resnet = functools.partial(keras_architectures.resnet_cifar, 20)
    base = KerasModel(resnet, seed=0).build((16, 16, 3))
    # Each block's conv1 is followed (in layer order) by the conv2 reading it, except
    # where a shortcut conv comes between; unit pruning needs that order.
    percents = {name: 0.5 for name in base.layer_names if name.endswith("conv1")
                and (name.startswith("block0") or not name.endswith("_0_conv1"))}
    masks = pruning.prune(percents, base.masks, base.weights, selection="unit",
                          order=base.layer_names)
    ticket = KerasModel(resnet, presets=base.weights, masks=masks, seed=0).build((16, 16, 3))
    masked = ticket.to_keras()
    smaller = export.compact(masked)
    # conv1 of a block feeds only conv2, whose rows for conv1's pruned filters are 0.
    alive = int(masks["block0_0_conv1"].reshape(-1, 16).any(axis=0).sum())
    assert alive == 8
    assert smaller.get_layer("block0_0_conv1").kernel.shape[-1] == alive
    assert smaller.get_layer("block2_2_conv1").kernel.shape[-1] == 32
    assert smaller.get_layer("block2_2_conv1_bn").gamma.shape == (32,)
    assert smaller.get_layer("block2_2_conv2").kernel.shape == (3, 3, 32, 64)
    assert smaller.count_params() < masked.count_params()
    x = np.random.RandomState(0).rand(4, 16, 16, 3).astype(np.float32)
    np.testing.assert_allclose(smaller(x).numpy(), masked(x).numpy(), atol=1e-5)


def test_compact_removes_a_pruned_filter_read_as_exact_zero_and_keeps_a_nonzero_constant():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c0")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    y = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([x, y]))
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    rng = np.random.RandomState(0)
    for layer in model.layers:
        layer.set_weights([rng.randn(*w.shape).astype(np.float32) for w in layer.get_weights()])
    bn = model.get_layer("bn")
    gamma, beta, mean, variance = bn.get_weights()
    variance = np.abs(variance) + 0.5
    beta[[1, 2]], mean[[1, 2]] = [-3.0, 3.0], 0.0  # after ReLU: channel 1 is 0, channel 2 is 3
    bn.set_weights([gamma, beta, mean, variance])
    for name in ("c0", "c1"):  # filters 1 and 2 pruned in both branches of the Add
        kernel, bias = model.get_layer(name).get_weights()
        kernel[..., [1, 2]], bias[[1, 2]] = 0.0, [0.0, 0.0]
        model.get_layer(name).set_weights([kernel, bias])
    # Every consumer still reads channels 1 and 2 (c1's rows, the head's rows).
    smaller = export.compact(model)
    assert smaller.get_layer("c0").kernel.shape == (3, 3, 2, 3)  # channel 1 (exact 0) gone
    np.testing.assert_array_equal(smaller.get_layer("bn").beta.numpy(), beta[[0, 2, 3]])
    x = rng.rand(5, 8, 8, 2).astype(np.float32)
    np.testing.assert_allclose(smaller(x).numpy(), model(x).numpy(), atol=1e-5)


@keras.saving.register_keras_serializable(package="lottery_ticket_tests")
class SerializableSubclassed(keras.Model):
    """A subclassed model whose config rebuilds it: it exports."""

    def __init__(self, units: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu", name="hidden")
        self.out = keras.layers.Dense(3, name="out")

    def call(self, inputs, training=False):
        return self.out(self.hidden(inputs))

    def get_config(self):
        return dict(super().get_config(), units=self.units)


def test_subclassed_models_export_when_their_config_rebuilds_them_and_are_refused_if_not(
        tmp_path):
    x = np.random.RandomState(0).rand(4, 6).astype(np.float32)
    subclassed = SerializableSubclassed()
    subclassed(x)
    base = KerasModel(subclassed, seed=1).build((6,))
    masks = base.masks
    masks["hidden"][:, :2] = 0
    ticket = KerasModel(subclassed, presets=base.weights, masks=masks, seed=1).build((6,))
    exported = ticket.to_keras()
    assert isinstance(exported, SerializableSubclassed)
    assert np.all(exported.hidden.kernel.numpy()[:, :2] == 0.0)
    np.testing.assert_allclose(exported(x).numpy(), ticket(x).numpy(), atol=1e-6)
    exported.save(str(tmp_path / "sub.keras"))  # loads where the class is registered
    loaded = keras.models.load_model(str(tmp_path / "sub.keras"))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ticket(x).numpy(), atol=1e-6)
    plain = Subclassed()
    plain(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match="functional or Sequential.*register_keras_serializable"):
        KerasModel(plain, seed=0).build((8, 8, 1)).to_keras()


def test_compact_keeps_a_pruned_unit_whose_activation_is_not_zero():
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, activation="sigmoid", name="gate")(inputs)
    y = keras.layers.Dense(4, activation="relu", name="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Add()([x, y])))
    rng = np.random.RandomState(0)
    for name in ("gate", "relu"):  # unit 1 pruned in both, its biases 0
        kernel, bias = model.get_layer(name).get_weights()
        kernel[:, 1], bias[1] = 0.0, 0.0
        model.get_layer(name).set_weights([kernel, bias])
    model.get_layer("out").set_weights([rng.randn(4, 2).astype(np.float32), np.zeros(2)])
    # sigmoid(0) + relu(0) = 0.5 (not the biases' 0) reaches the head: unit 1 stays.
    smaller = export.compact(model)
    assert smaller.get_layer("gate").kernel.shape == (5, 4)
    x = rng.rand(3, 5).astype(np.float32)
    np.testing.assert_allclose(smaller(x).numpy(), model(x).numpy(), atol=1e-6)
