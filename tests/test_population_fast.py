"""The population's fast setup: what it reads equals the plain per-member reads, bit
for bit, and the files it leaves are the files the plain reads leave."""

import copy
import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC
from lottery_ticket.foundations import population
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.model_base import (ModelBase, bias_key, sigmoid_accuracy,
                                                   sigmoid_cross_entropy, unit_bias_masks)
from lottery_ticket.foundations.model_conv import ModelConv
from lottery_ticket.foundations.model_fc import ModelFc
from lottery_ticket.foundations.training import members, stacked

SGD = lambda: tf.keras.optimizers.SGD(learning_rate=0.1)  # noqa: E731
# done.json's timings, which differ from run to run.
TIMINGS = ("seconds", "iterations_per_second", "compile_seconds", "evaluation_seconds",
           "training_seconds")


class _Tiny(ModelBase):
    loss = staticmethod(sigmoid_cross_entropy)
    accuracy = staticmethod(sigmoid_accuracy)

    def __init__(self, presets=None, masks=None, seed=None):
        super().__init__(presets, masks, seed, name="tiny")

    def trace_key(self):
        return ("tiny_fast",)

    def forward(self, inputs, training=False):
        hidden = self.dense_layer("hidden", inputs, 6, activation="relu")
        return self.dense_layer("output", hidden, 1)


def _data(seed=0):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(240, 2)).astype(np.float32)
    y = (np.sum(x ** 2, axis=1) < 0.5).astype(np.float32)
    return DatasetBase((x, y), 12, test=(x[:60], y[:60]), train_order_seed=seed)


def _tiny_members(count=5):
    """Members with and without kernel masks, one with bias masks, one with presets
    whose pruned positions hold nonzero values (the mask must zero them)."""
    rng = np.random.default_rng(7)
    models = []
    for k in range(count):
        masks = None
        if k % 2:
            masks = {"hidden": (rng.random((2, 6)) < 0.6).astype(np.float32)}
            masks["hidden"][:, 0] = 0
            if k == 3:
                masks.update(unit_bias_masks({"hidden": masks["hidden"]}))
        presets = None
        if k == 1:
            presets = {"hidden": rng.standard_normal((2, 6)).astype(np.float32)}
        models.append(_Tiny(seed=k, masks=masks, presets=presets))
    return models


def _plain_stacked(models, keys):
    """What the engine loaded before: each member's own reads, stacked."""
    values = [m.get_current_weights(include_biases=True) for m in models]
    masks = []
    for m in models:
        mask = dict(m.masks)
        for name, bias in m.bias_variables.items():
            mask[bias_key(name)] = m.bias_masks.get(bias_key(name),
                                                    np.ones(bias.shape, np.float32))
        masks.append(mask)
    return ({key: np.stack([v[key] for v in values]) for key in keys},
            {key: np.stack([m[key] for m in masks]) for key in keys})


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("make, shape", [
    (_tiny_members, [2]),
    (lambda: [ModelFc(SMALL_FC, seed=1),
              ModelFc(SMALL_FC, seed=2, masks={"layer0": np.zeros((784, 32), np.float32)})],
     [784]),
    (lambda: [ModelConv(((2,),), dense_units=(8,), dropout=0.5, seed=s) for s in (0, 1)],
     [8, 8, 1]),
])
def test_stacked_weights_equal_each_members_own_reads(make, shape):
    models = make()
    for model in models:
        model.build(shape)
    keys = list(models[0].get_current_weights(include_biases=True))
    weights, masks = stacked.stacked_weights(models, keys)
    plain_weights, plain_masks = _plain_stacked(models, keys)
    assert set(weights) == set(masks) == set(keys)
    for key in keys:
        assert _same_bits(weights[key], plain_weights[key]), key
        assert _same_bits(masks[key], plain_masks[key]), key


def test_stacked_weights_keep_signed_zeros_and_tiny_values():
    """Bit for bit, not just equal: -0.0 and denormals come out as each member's
    own get_current_weights gives them."""
    models = [_Tiny(seed=k, masks={"hidden": np.ones((2, 6), np.float32)} if k else None)
              for k in range(2)]
    for model in models:
        model.build([2])
        kernel = model.kernel_variables["hidden"]
        values = kernel.numpy()
        values[0, :3] = [-0.0, 1e-40, -1e-42]
        kernel.assign(values)
    keys = list(models[0].get_current_weights(include_biases=True))
    weights, _ = stacked.stacked_weights(models, keys)
    plain, _ = _plain_stacked(models, keys)
    assert _same_bits(weights["hidden"], plain["hidden"])


def test_weight_layout_reads_shapes_as_the_weights_have_them():
    masks = {"layer0": np.ones((784, 32), np.float32)}
    masks.update(unit_bias_masks(masks))
    models = [ModelFc(SMALL_FC, seed=1, masks=masks).build([784]),
              ModelConv(((2,),), dense_units=(8,), dropout=0.5, seed=0).build([8, 8, 1]),
              _Tiny(seed=0).build([2])]
    for model in models:
        assert members.reads_own_variables(model)
        plain = [(key, tuple(np.shape(value))) for key, value in
                 model.get_current_weights(include_biases=True).items()]
        assert members.weight_layout(model)[:len(plain)] == plain
        assert len(members.weight_layout(model)) == len(plain) + len(model.dropout_seeds)


def _tree(directory):
    """Every file's bytes (done.json without its timings) and mode, by path."""
    tree = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory)
            with open(path, "rb") as f:
                data = f.read()
            if name == "done.json":
                record = json.loads(data)
                for key in TIMINGS:
                    record.pop(key, None)
                tree[relative] = record
            else:
                tree[relative] = hashlib.sha256(data).hexdigest()
            tree[relative + ":mode"] = os.stat(path).st_mode
    return tree


def _train_population(directory, monkeypatch=None, plain=False):
    models = _tiny_members()
    dirs = [os.path.join(directory, f"m{k}") for k in range(len(models))]
    if plain:
        # Every member read through get_current_weights, as before the fast reads.
        monkeypatch.setattr(stacked, "reads_own_variables", lambda model: False)
        monkeypatch.setattr(members, "reads_own_variables", lambda model: False)
    results = population.train_population(
        [_data(k) for k in range(len(models))], models, SGD, ("iterations", 24), dirs,
        test_interval=8, save_summaries=False, progress=False, snapshot_iterations=(8,),
        run_infos=[{"k": k} for k in range(len(models))])
    if plain:
        monkeypatch.undo()
    return results, _tree(directory)


def test_the_fast_reads_leave_the_files_the_plain_reads_leave(tmp_path, monkeypatch):
    fast_results, fast = _train_population(str(tmp_path / "fast"))
    plain_results, plain = _train_population(str(tmp_path / "plain"), monkeypatch, plain=True)
    assert len(fast) == 5 * 2 * (1 + 4 + 2 + 4 + 4 + 1 + 1)
    assert fast == plain
    for a, b in zip(fast_results, plain_results):
        for key in a.final:
            assert _same_bits(a.final[key], b.final[key])
    # And again: the same seeds and settings give the same bits.
    _, again = _train_population(str(tmp_path / "again"))
    assert again == fast


def test_auto_xla_is_recorded_as_auto(tmp_path, monkeypatch):
    monkeypatch.delenv("LOTTERY_TICKET_XLA_AUTO", raising=False)
    models = [_Tiny(seed=k) for k in range(2)]
    results = population.train_population(
        _data(), models, SGD, ("iterations", 2), [str(tmp_path / f"a{k}") for k in range(2)],
        test_interval=None, save_summaries=False, progress=False)
    assert [r.record["xla"] for r in results] == [
        {"setting": "auto", "training": stacked.population_xla(True), "evaluation": False,
         "sparse_layers": []}] * 2
    off = population.train_population(
        _data(), [_Tiny(seed=k) for k in range(2)], SGD, ("iterations", 2),
        [str(tmp_path / f"o{k}") for k in range(2)], test_interval=None,
        save_summaries=False, progress=False, jit_compile=False)
    # The same engine, reused: each population records its own setting.
    assert [r.record["xla"]["setting"] for r in off] == ["off", "off"]


def test_auto_xla_follows_the_environment_variable(monkeypatch):
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "on")
    assert stacked.population_xla(True) is True and stacked.population_xla(False) is True
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "off")
    assert stacked.population_xla(True) is False
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "sometimes")
    with pytest.raises(ValueError, match="LOTTERY_TICKET_XLA_AUTO.*auto, on or off"):
        stacked.population_xla(True)


def test_a_bad_xla_environment_variable_is_refused_before_any_directory(tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("LOTTERY_TICKET_XLA_AUTO", "sometimes")
    with pytest.raises(ValueError, match="LOTTERY_TICKET_XLA_AUTO.*auto, on or off"):
        population.train_population(
            _data(), [_Tiny(seed=k) for k in range(2)], SGD, ("iterations", 2),
            [str(tmp_path / f"m{k}") for k in range(2)], test_interval=None,
            save_summaries=False, progress=False)
    assert os.listdir(tmp_path) == []


class _Stop(Exception):
    pass


@pytest.mark.parametrize("distinct_data", [False, True])
def test_lockstep_checks_the_fit_once_for_trials_on_the_same_arrays(tmp_path, monkeypatch,
                                                                    distinct_data):
    """The trials differ only in their seeds: one check_fit covers all of them
    unless their data are other arrays, which are each checked."""
    from test_population import LOTTERY  # pylint: disable=import-outside-toplevel
    from lottery_ticket.experiments import build, lockstep
    from lottery_ticket.foundations import experiment

    checked = []
    original_check = build.check_fit

    def counting(config, dataset, model, *args, **kwargs):
        checked.append(model.seed)
        return original_check(config, dataset, model, *args, **kwargs)

    def stop(*args, **kwargs):
        raise _Stop()

    monkeypatch.setattr(build, "check_fit", counting)
    monkeypatch.setattr(experiment, "lockstep", stop)
    if distinct_data:
        original_datasets = lockstep.datasets

        def copied(config, seeds):
            made = original_datasets(config, seeds)
            for dataset in made[1:]:
                for split in list(dataset.splits):
                    x, y = getattr(dataset, split)
                    setattr(dataset, split, (x.copy(), y.copy()))
            return made

        monkeypatch.setattr(lockstep, "datasets", copied)
    with pytest.raises(_Stop):
        lockstep.run_trials(str(tmp_path), LOTTERY, [3, 4, 5], progress=False)
    assert checked == ([3, 4, 5] if distinct_data else [3])


def test_same_arrays():
    from lottery_ticket.experiments.lockstep import same_arrays  # pylint: disable=import-outside-toplevel
    one = _data(0)
    other = copy.copy(one)
    other.train_order_seed = 1
    assert same_arrays(one, other)
    other.test = (one.test[0].copy(), one.test[1])
    assert not same_arrays(one, other)
    assert not same_arrays(one, DatasetBase(one.train, 13, test=one.test))


def test_a_model_that_transforms_its_kernels_is_read_by_running_it():
    class Doubled(ModelFc):
        def effective_kernel(self, name):
            return 2.0 * super().effective_kernel(name)

    plain, doubled = ModelFc(SMALL_FC, seed=1), Doubled(SMALL_FC, seed=1)
    for model in (plain, doubled):
        model(np.zeros((1, 784), np.float32))
    assert members.reads_own_variables(plain)
    assert not members.reads_own_variables(doubled)
    own = doubled.get_current_weights(include_biases=True)
    weights, _ = stacked.stacked_weights([doubled], list(own))
    for key, value in own.items():
        np.testing.assert_array_equal(weights[key][0], value)
    np.testing.assert_array_equal(weights["layer0"][0],
                                  2.0 * plain.get_current_weights()["layer0"])
