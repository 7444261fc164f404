"""Scores (magnitude, random) apart from selection (layerwise, global, unit)."""

import numpy as np
import pytest

from lottery_ticket.experiments import build
from lottery_ticket.experiments import components
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import pruning
from lottery_ticket.mnist_fc import constants

LENET = {"layer0": (784, 300), "layer1": (300, 100), "layer2": (100, 10)}


def _network(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=shape) for name, shape in shapes.items()}


def _dense(shapes):
    return {name: np.ones(shape, np.float32) for name, shape in shapes.items()}


def _reference_prune_by_percent(percents, masks, final_weights):
    """The layerwise magnitude pruning of the previous release, for bit-for-bit checks."""
    new_masks = {name: np.asarray(mask, dtype=np.float32).copy()
                 for name, mask in masks.items()}
    for name, percent in percents.items():
        mask = new_masks[name].reshape(-1)
        alive = np.flatnonzero(mask)
        count = int(np.floor(float(percent) * alive.size + 0.5))
        if count == 0:
            continue
        magnitudes = np.abs(np.asarray(final_weights[name], dtype=np.float64).reshape(-1))
        order = np.argsort(magnitudes[alive], kind="stable")
        mask[alive[order[:count]]] = 0.0
    return new_masks


# --- layerwise: the previous behaviour, bit for bit -------------------------------------

def test_layerwise_magnitude_is_the_previous_prune_by_percent_bit_for_bit():
    rng = np.random.default_rng(3)
    masks, old = _dense(LENET), _dense(LENET)
    for level in range(4):
        # Rounded weights make many ties, the case where an order change would show.
        weights = {name: np.round(rng.normal(size=shape), 1) for name, shape in LENET.items()}
        masks = pruning.prune(constants.PRUNE_PERCENTS, masks, weights)
        old = _reference_prune_by_percent(constants.PRUNE_PERCENTS, old, weights)
        for name in LENET:
            assert masks[name].dtype == np.float32
            np.testing.assert_array_equal(masks[name], old[name])
        np.testing.assert_array_equal(
            pruning.prune_by_percent(constants.PRUNE_PERCENTS, masks, weights)["layer0"],
            _reference_prune_by_percent(constants.PRUNE_PERCENTS, masks, weights)["layer0"])


# --- global -----------------------------------------------------------------------------

def test_global_pools_the_layers_that_share_a_rate():
    assert pruning.rate_groups(constants.PRUNE_PERCENTS) == [["layer0", "layer1"], ["layer2"]]
    assert pruning.rate_groups({"layer10": 0.2, "layer2": 0.1, "layer1": 0.2}) == [
        ["layer1", "layer10"], ["layer2"]]


def test_global_keeps_the_output_layer_in_a_pool_of_its_own():
    """Conv-2's convolutions and output layer share a rate, but not a threshold."""
    percents = {"conv0": 0.1, "conv1": 0.1, "fc0": 0.2, "fc1": 0.2, "output": 0.1}
    assert pruning.rate_groups(percents, output="output") == [
        ["conv0", "conv1"], ["fc0", "fc1"], ["output"]]
    shapes = {"conv0": (3, 3, 1, 4), "conv1": (3, 3, 4, 4), "fc0": (64, 8), "fc1": (8, 8),
              "output": (8, 10)}
    masks = {name: np.ones(shape, np.float32) for name, shape in shapes.items()}
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(size=shape) for name, shape in shapes.items()}
    weights["output"] = weights["output"] / 100  # smallest: one shared threshold takes it
    new = pruning.prune(percents, masks, weights, selection="global")
    assert new["output"].sum() == 80 - pruning.count_to_prune(0.1, 80)
    convs = new["conv0"].sum() + new["conv1"].sum()
    assert convs == 36 + 144 - pruning.count_to_prune(0.1, 180)


def test_global_prunes_exactly_the_pool_count_across_layers_of_different_sizes():
    masks = _dense(LENET)
    # layer1's weights are 10x smaller, so one threshold takes them first.
    weights = _network(LENET, seed=1)
    weights["layer1"] = weights["layer1"] / 10
    expected_pool = 784 * 300 + 300 * 100
    expected_output = 1000
    for level in range(1, 4):
        masks = pruning.prune(constants.PRUNE_PERCENTS, masks, weights, selection="global")
        expected_pool -= pruning.count_to_prune(0.2, expected_pool)
        expected_output -= pruning.count_to_prune(0.1, expected_output)
        pool = int(masks["layer0"].sum() + masks["layer1"].sum())
        assert pool == expected_pool, level
        assert int(masks["layer2"].sum()) == expected_output, level
    # 3 levels at 20% leave 51.2% of the pool; layer1 lost far more than layer0.
    assert expected_pool == 135782
    assert int(masks["layer1"].sum()) < 0.1 * 30000
    assert int(masks["layer0"].sum()) > 0.55 * 235200


def test_global_removes_the_pool_s_smallest_magnitudes_under_one_threshold():
    weights = {"a": np.array([0.1, 5.0, 0.3, 4.0]), "b": np.array([[0.2, 6.0], [0.05, 7.0]]),
               "c": np.array([1.0, 2.0, 3.0, 0.01])}
    masks = {name: np.ones_like(w) for name, w in weights.items()}
    new = pruning.prune({"a": 0.5, "b": 0.5, "c": 0.25}, masks, weights, selection="global")
    # Pool a+b: 8 weights, 4 go: 0.05, 0.1, 0.2, 0.3 -- a loses 2, b loses 2.
    np.testing.assert_array_equal(new["a"], [0, 1, 0, 1])
    np.testing.assert_array_equal(new["b"], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(new["c"], [1, 1, 1, 0])
    weights["a"] = np.array([0.01, 0.02, 0.03, 0.04])
    uneven = pruning.prune({"a": 0.5, "b": 0.5}, masks, weights, selection="global")
    # Now a holds the 4 smallest of the pool: a loses everything, b nothing.
    np.testing.assert_array_equal(uneven["a"], [0, 0, 0, 0])
    np.testing.assert_array_equal(uneven["b"], np.ones((2, 2)))
    layerwise = pruning.prune({"a": 0.5, "b": 0.5}, masks, weights)
    np.testing.assert_array_equal(layerwise["a"], [0, 0, 1, 1])
    np.testing.assert_array_equal(layerwise["b"], [[0, 1], [0, 1]])


def test_global_and_layerwise_agree_on_a_pool_of_one_layer():
    weights = _network(LENET, seed=2)
    percents = {"layer0": 0.2, "layer1": 0.3, "layer2": 0.1}  # three rates: three pools
    globally = pruning.prune(percents, _dense(LENET), weights, selection="global")
    layerwise = pruning.prune(percents, _dense(LENET), weights)
    for name in LENET:
        np.testing.assert_array_equal(globally[name], layerwise[name])


def test_global_ties_go_to_the_earlier_layer_then_the_lower_index():
    # "out" is the output layer (last), pruned apart: the two others share a pool.
    weights = {"layer10": np.full(4, 0.5), "layer2": np.full(4, 0.5), "out": np.ones(4)}
    masks = {name: np.ones(4) for name in weights}
    new = pruning.prune({"layer10": 0.5, "layer2": 0.5}, masks, weights, selection="global")
    # layer2 comes before layer10 in layer order, whatever the dicts' order.
    np.testing.assert_array_equal(new["layer2"], [0, 0, 0, 0])
    np.testing.assert_array_equal(new["layer10"], [1, 1, 1, 1])
    reordered = pruning.prune({"layer2": 0.5, "layer10": 0.5},
                              {"out": np.ones(4), "layer2": np.ones(4), "layer10": np.ones(4)},
                              {"layer2": weights["layer2"], "layer10": weights["layer10"],
                               "out": weights["out"]},
                              selection="global")
    for name in weights:
        np.testing.assert_array_equal(reordered[name], new[name])
    # The model's own order, where given, decides instead.
    ordered = pruning.prune({"layer10": 0.5, "layer2": 0.5}, masks, weights,
                            selection="global", order=["layer10", "layer2", "out"])
    np.testing.assert_array_equal(ordered["layer10"], [0, 0, 0, 0])
    np.testing.assert_array_equal(ordered["layer2"], [1, 1, 1, 1])


def test_global_explicit_groups():
    # "z" is the output layer, not pruned here; a, b and c share a rate and a pool.
    weights = {"a": np.array([1.0, 2.0]), "b": np.array([0.1, 0.2]), "c": np.array([3.0, 4.0]),
               "z": np.array([0.01, 0.01])}
    masks = {name: np.ones(2) for name in weights}
    percents = {"a": 0.5, "b": 0.5, "c": 0.5}
    by_rate = pruning.prune(percents, masks, weights, selection="global")
    # One pool of 6: 0.1, 0.2 and 1.0 go.
    assert [int(by_rate[n].sum()) for n in "abc"] == [1, 0, 2]
    separate = pruning.prune(percents, masks, weights, selection="global",
                             groups=[["a", "b"], ["c"]])
    assert [int(separate[n].sum()) for n in "abc"] == [2, 0, 1]
    np.testing.assert_array_equal(separate["c"], [0, 1])
    apart = pruning.prune(percents, masks, weights, selection="global",
                          groups=[["a"], ["b"], ["c"]])
    assert [int(apart[n].sum()) for n in "abc"] == [1, 1, 1]


@pytest.mark.parametrize("groups, message", [
    ([["b", "c"]], r"layer\(s\) \['a'\] have a pruning percent but are in no group"),
    ([["b", "c"], ["c", "a"]], r"'c' is in groups\[0\] and groups\[1\]"),
    ([["a", "c"], ["b"]], r"groups\[0\] pools layers with different rates \[0.2, 0.5\]"),
    ([["a", "x"], ["b", "c"]], r"groups\[0\] names layer 'x', which has no pruning percent"),
    (["abc"], r"groups\[0\] is 'abc'; each group is a non-empty list"),
])
def test_bad_groups_are_named(groups, message):
    weights = {name: np.ones(2) for name in "abc"}
    with pytest.raises(ValueError, match=message):
        pruning.prune({"a": 0.2, "b": 0.5, "c": 0.5}, weights, weights, selection="global",
                      groups=groups)


def test_groups_need_global_selection():
    with pytest.raises(ValueError, match="groups are for global selection"):
        pruning.prune({"a": 0.2}, {"a": np.ones(2)}, {"a": np.ones(2)}, groups=[["a"]])


# --- random scores ----------------------------------------------------------------------

@pytest.mark.parametrize("selection", ["layerwise", "global"])
def test_random_scores_are_reproducible_per_seed_and_differ_across_seeds(selection):
    weights = _network(LENET)
    first = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights, scores="random",
                          seed=7, selection=selection)
    again = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights, scores="random",
                          seed=7, selection=selection)
    other = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights, scores="random",
                          seed=8, selection=selection)
    magnitude = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights,
                              selection=selection)
    for name in LENET:
        np.testing.assert_array_equal(first[name], again[name])
        assert int(first[name].sum()) == int(other[name].sum()) or selection == "global"
        assert not np.array_equal(first[name], other[name])
        assert not np.array_equal(first[name], magnitude[name])
    assert sum(int(m.sum()) for m in first.values()) == sum(
        int(m.sum()) for m in other.values())


def test_random_scores_ignore_the_weights_and_the_dict_order():
    weights = _network(LENET)
    masks = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights, scores="random",
                          seed=1)
    others = _network(LENET, seed=99)
    reordered = {name: _dense(LENET)[name] for name in reversed(list(LENET))}
    again = pruning.prune(constants.PRUNE_PERCENTS, reordered, others, scores="random",
                          seed=1)
    for name in LENET:
        np.testing.assert_array_equal(masks[name], again[name])


def test_random_layerwise_keeps_exact_counts_and_never_revives():
    masks, weights = _dense(LENET), _network(LENET)
    expected = {name: int(np.prod(shape)) for name, shape in LENET.items()}
    for level in range(1, 5):
        previous = masks
        masks = pruning.prune(constants.PRUNE_PERCENTS, masks, weights, scores="random",
                              seed=level)  # a new seed each level: a new draw
        for name, percent in constants.PRUNE_PERCENTS.items():
            expected[name] -= pruning.count_to_prune(percent, expected[name])
            assert int(masks[name].sum()) == expected[name]
            assert not (masks[name] > previous[name]).any()


def test_random_scores_need_a_seed():
    with pytest.raises(ValueError, match=r"random scores need a seed.*seed=N"):
        pruning.prune({"a": 0.2}, {"a": np.ones(3)}, {"a": np.ones(3)}, scores="random")
    with pytest.raises(ValueError, match="random scores need a seed"):
        pruning.prune({"a": 0.2}, {"a": np.ones(3)}, {"a": np.ones(3)}, scores="random",
                      seed=-1)


# --- never revived, for every strategy --------------------------------------------------

@pytest.mark.parametrize("selection, scores", [("layerwise", "magnitude"),
                                               ("global", "magnitude"),
                                               ("global", "random")])
def test_pruned_weights_are_never_revived(selection, scores):
    # The pruned weights have the largest final magnitudes (and final weights of pruned
    # positions are not 0 here); they must stay pruned.
    weights = {"a": np.array([100.0, 100.0, 1.0, 2.0, 3.0]), "b": np.array([50.0, 0.5, 0.7])}
    masks = {"a": np.array([0.0, 0.0, 1.0, 1.0, 1.0]), "b": np.array([0.0, 1.0, 1.0])}
    new = pruning.prune({"a": 0.5, "b": 0.5}, masks, weights, selection=selection,
                        scores=scores, seed=0)
    assert new["a"][:2].tolist() == [0, 0] and new["b"][0] == 0
    assert int(new["a"].sum() + new["b"].sum()) == 5 - pruning.count_to_prune(0.5, 5)


# --- unit pruning -----------------------------------------------------------------------

def _fc_units():
    """layer0 [3 inputs, 4 units] -> layer1 [4, 2 units] -> layer2 [2, 2 outputs]."""
    layer0 = np.array([[1.0, 0.1, 3.0, 0.5],
                       [1.0, 0.1, 3.0, 0.5],
                       [1.0, 0.1, 3.0, 0.5]])   # input norms: 1.73, 0.17, 5.20, 0.87
    layer1 = np.array([[0.1, 0.1],
                       [9.0, 9.0],
                       [0.2, 0.2],
                       [1.0, 1.0]])             # output norms: 0.14, 12.7, 0.28, 1.41
    layer2 = np.array([[1.0, 2.0], [3.0, 4.0]])
    weights = {"layer0": layer0, "layer1": layer1, "layer2": layer2}
    return {name: np.ones_like(w) for name, w in weights.items()}, weights


@pytest.mark.parametrize("scores, removed", [
    ("input_magnitude", [1, 3]),     # 0.17 and 0.87 are the smallest incoming norms
    ("magnitude", [1, 3]),           # the same
    ("output_magnitude", [0, 2]),    # 0.14 and 0.28 are the smallest outgoing norms
    # products: 1.73*0.14=0.24, 0.17*12.7=2.2, 5.20*0.28=1.47, 0.87*1.41=1.22
    ("magnitude_product", [0, 3]),
])
def test_unit_pruning_removes_whole_columns_and_the_next_rows(scores, removed):
    masks, weights = _fc_units()
    new = pruning.prune({"layer0": 0.5}, masks, weights, selection="unit", scores=scores)
    kept = [unit for unit in range(4) if unit not in removed]
    assert (new["layer0"][:, removed] == 0).all() and (new["layer0"][:, kept] == 1).all()
    assert (new["layer1"][removed, :] == 0).all() and (new["layer1"][kept, :] == 1).all()
    np.testing.assert_array_equal(new["layer2"], masks["layer2"])
    alone = pruning.prune({"layer0": 0.5}, masks, weights, selection="unit", scores=scores,
                          prune_next=False)
    np.testing.assert_array_equal(alone["layer0"], new["layer0"])
    np.testing.assert_array_equal(alone["layer1"], masks["layer1"])


@pytest.mark.parametrize("scores", ["input_magnitude", "output_magnitude",
                                    "magnitude_product", "random"])
def test_unit_counts_are_exact_and_removed_units_stay_removed(scores):
    shapes = {"layer0": (20, 30), "layer1": (30, 17), "layer2": (17, 10)}
    masks, weights = _dense(shapes), _network(shapes, seed=4)
    alive = {"layer0": 30, "layer1": 17}
    percents = {"layer0": 0.2, "layer1": 0.25}
    for level in range(1, 5):
        previous = masks
        masks = pruning.prune(percents, masks, weights, selection="unit", scores=scores,
                              seed=3)
        for name, percent in percents.items():
            alive[name] -= pruning.count_to_prune(percent, alive[name])
            units = pruning.surviving_units(masks[name])
            assert int(units.sum()) == alive[name], (level, name)
            # Whole columns: a unit is all there (but for the inputs from the previous
            # layer's removed units) or all gone.
            inputs = shapes[name][0] if name == "layer0" else alive["layer0"]
            assert set(masks[name].sum(axis=0).tolist()) == {0.0, float(inputs)}
            assert not (masks[name] > previous[name]).any()
        # layer1's rows of layer0's removed units are gone too, and nothing else of layer1's.
        dead = ~pruning.surviving_units(masks["layer0"])
        assert (masks["layer1"][dead] == 0).all()
        assert (masks["layer1"][~dead][:, pruning.surviving_units(masks["layer1"])] == 1).all()
    assert alive == {"layer0": 12, "layer1": 5}  # 30-6-5-4-3 and 17-4-3-3-2


def test_unit_pruning_removes_conv_filters_and_the_next_layers_inputs():
    rng = np.random.default_rng(5)
    shapes = {"conv0": (3, 3, 2, 8), "conv1": (3, 3, 8, 6), "fc0": (4 * 4 * 6, 5),
              "fc1": (5, 3)}
    weights = {name: rng.normal(size=shape) for name, shape in shapes.items()}
    weights["conv0"][..., 5] *= 0.01  # the weakest filter by incoming magnitude
    masks = _dense(shapes)
    new = pruning.prune({"conv0": 0.25, "conv1": 0.5}, masks, weights, selection="unit")
    dead0 = np.flatnonzero(~pruning.surviving_units(new["conv0"]))
    dead1 = np.flatnonzero(~pruning.surviving_units(new["conv1"]))
    assert len(dead0) == 2 and 5 in dead0 and len(dead1) == 3
    assert (new["conv0"][..., dead0] == 0).all() and new["conv0"].sum() == 3 * 3 * 2 * 6
    # conv1's input channels of conv0's dead filters, and fc0's flattened (NHWC) inputs.
    assert (new["conv1"][:, :, dead0, :] == 0).all()
    flat_channel = np.arange(4 * 4 * 6) % 6
    assert (new["fc0"][np.isin(flat_channel, dead1)] == 0).all()
    assert new["fc0"].sum() == 4 * 4 * 3 * 5
    np.testing.assert_array_equal(new["fc1"], masks["fc1"])


def test_unit_ties_go_to_the_lower_index():
    weights = {"layer0": np.ones((2, 4)), "layer1": np.ones((4, 2))}
    masks = {name: np.ones_like(w) for name, w in weights.items()}
    new = pruning.prune({"layer0": 0.5}, masks, weights, selection="unit")
    np.testing.assert_array_equal(new["layer0"][0], [0, 0, 1, 1])


def test_unit_random_scores_are_reproducible_per_seed():
    shapes = {"layer0": (10, 40), "layer1": (40, 10)}
    weights = _network(shapes)

    def dead(seed):
        masks = pruning.prune({"layer0": 0.5}, _dense(shapes), weights, selection="unit",
                              scores="random", seed=seed)
        return np.flatnonzero(~pruning.surviving_units(masks["layer0"])).tolist()

    assert dead(1) == dead(1) and len(dead(1)) == 20
    assert dead(1) != dead(2)


def test_unit_pruning_refuses_the_output_layer():
    masks, weights = _fc_units()
    with pytest.raises(ValueError, match=r"'layer2' is the last layer.*Leave it out"):
        pruning.prune({"layer1": 0.5, "layer2": 0.5}, masks, weights, selection="unit")
    # 0 for the output layer is fine: nothing of it is pruned.
    new = pruning.prune({"layer1": 0.5, "layer2": 0.0}, masks, weights, selection="unit")
    # layer1's two units tie: unit 0 goes, and its row of layer2.
    np.testing.assert_array_equal(new["layer1"], [[0, 1]] * 4)
    np.testing.assert_array_equal(new["layer2"], [[0, 0], [1, 1]])


def test_unit_pruning_with_a_wrong_layer_order_is_named():
    masks, weights = _fc_units()
    with pytest.raises(ValueError, match=r"'layer1' has 2 units, but the layer after it, "
                                         r"'layer0'.*order=model.layer_names"):
        pruning.prune({"layer1": 0.5}, masks, weights, selection="unit",
                      order=["layer1", "layer0", "layer2"])
    with pytest.raises(ValueError, match=r"leaves out layer\(s\) \['layer2'\]"):
        pruning.prune({"layer0": 0.5}, masks, weights, selection="unit",
                      order=["layer0", "layer1"])


def test_unit_pruning_needs_a_kernel():
    with pytest.raises(ValueError, match=r"mask of shape \(4,\); unit pruning needs a kernel"):
        pruning.prune({"a": 0.5}, {"a": np.ones(4), "b": np.ones((4, 2))},
                      {"a": np.ones(4), "b": np.ones((4, 2))}, selection="unit")


# --- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"selection": "globl"}, r"unknown selection 'globl'\. Did you mean 'global'\? "
                             r"Selections: layerwise, global, unit"),
    ({"scores": "magnitud"}, r"unknown weight score 'magnitud' for layerwise selection\. "
                             r"Did you mean 'magnitude'\?"),
    ({"scores": "output_magnitude"}, r"unknown weight score 'output_magnitude' for "
                                     r"layerwise.*Scores: (\w+, )*magnitude, (\w+, )*random"),
    ({"scores": "input_magnitud", "selection": "unit"},
     r"unknown unit score 'input_magnitud'.*Did you mean 'input_magnitude'\?"),
])
def test_unknown_names_suggest_the_closest(kwargs, message):
    masks, weights = _fc_units()
    with pytest.raises(ValueError, match=message):
        pruning.prune({"layer0": 0.5}, masks, weights, **kwargs)


@pytest.mark.parametrize("selection", pruning.SELECTIONS)
def test_input_errors_for_every_selection(selection):
    masks, weights = _fc_units()
    with pytest.raises(ValueError, match=r"'layr0', which has no mask\. Did you mean "
                                         r"'layer0'\?"):
        pruning.prune({"layr0": 0.5}, masks, weights, selection=selection)
    with pytest.raises(ValueError, match=r"'layer0' is 1\.5; it is a fraction in \[0, 1\)"):
        pruning.prune({"layer0": 1.5}, masks, weights, selection=selection)
    with pytest.raises(ValueError, match=r"'layer0': mask shape \(3, 4\) differs from "
                                         r"weight shape \(4, 3\)"):
        pruning.prune({"layer0": 0.5}, masks, dict(weights, layer0=weights["layer0"].T),
                      selection=selection)
    with pytest.raises(ValueError, match=r"'layer0' has no final weights"):
        pruning.prune({"layer0": 0.5}, masks, {"layer1": weights["layer1"]},
                      selection=selection)
    broken = dict(weights, layer0=np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match=r"'layer0'.*NaN or infinity"):
        pruning.prune({"layer0": 0.5}, masks, broken, selection=selection)


# --- from the configuration -------------------------------------------------------------

def test_registered_strategies_follow_the_configuration():
    assert {"layerwise", "global", "unit"} <= set(components.PRUNING.names())
    weights = _network(LENET)
    config = ExperimentConfig().replace(pruning="global")
    globally = build.prune_fn(config)(_dense(LENET), weights)
    expected = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights,
                             selection="global")
    for name in LENET:
        np.testing.assert_array_equal(globally[name], expected[name])
    random = build.prune_fn(config.replace(pruning="layerwise", prune_scores="random",
                                           prune_seed=5))(_dense(LENET), weights)
    expected = pruning.prune(constants.PRUNE_PERCENTS, _dense(LENET), weights,
                             scores="random", seed=5)
    np.testing.assert_array_equal(random["layer1"], expected["layer1"])
    default = build.prune_fn(ExperimentConfig())(_dense(LENET), weights)
    old = _reference_prune_by_percent(constants.PRUNE_PERCENTS, _dense(LENET), weights)
    for name in LENET:
        np.testing.assert_array_equal(default[name], old[name])


def test_configuration_errors_come_before_any_pruning():
    with pytest.raises(ValueError, match=r"prune_scores 'randm' is not a pruning score\. "
                                         r"Did you mean 'random'\?"):
        ExperimentConfig().replace(prune_scores="randm")
    with pytest.raises(ValueError, match="prune_seed is -1; it must be at least 0"):
        ExperimentConfig().replace(prune_seed=-1)
    # A seed magnitude scores ignore would only set otherwise equal runs apart.
    with pytest.raises(ValueError, match="prune_seed=3 only applies to random pruning"):
        ExperimentConfig().replace(prune_seed=3)
    assert ExperimentConfig().replace(prune_scores="random", prune_seed=3)["prune_seed"] == 3
    # A unit score with a weight selection is found when the strategy is built.
    with pytest.raises(ValueError, match="unknown weight score 'output_magnitude' for global"):
        build.prune_fn(ExperimentConfig().replace(pruning="global",
                                                  prune_scores="output_magnitude"))
    with pytest.raises(ValueError, match="unknown pruning strategy 'globl'.*'global'"):
        components.PRUNING.get("globl")


def test_new_settings_default_to_the_previous_behaviour():
    config = ExperimentConfig()
    assert config["prune_scores"] == "magnitude" and config["prune_seed"] == 0
    identity = config.identity_defaults()
    assert identity["config.prune_scores"] == "magnitude"
    assert identity["config.prune_seed"] == 0


@pytest.mark.parametrize("masks, percents, message", [
    ({"a": np.full(4, 0.5)}, {"a": 0.5}, "holds values other than 0 and 1"),
    ({"a": np.array([1.0, np.nan, 1.0, 0.0])}, {"a": 0.5}, "holds values other than 0 and 1"),
    ({"a": np.ones(4)}, {"a": True}, "it is a fraction in"),
    ({"a": np.ones(4)}, {"a": "0.2"}, "it is a fraction in"),
])
def test_masks_and_rates_that_are_not_what_they_seem_are_refused(masks, percents, message):
    with pytest.raises(ValueError, match=message):
        pruning.prune(percents, masks, {"a": np.arange(4.0)})


def test_the_former_registry_module_names_the_same_components():
    from lottery_ticket.experiments import registry as former
    for name in ("MODELS", "OPTIMIZERS", "PRUNING"):
        assert getattr(former, name) is getattr(components, name)
    assert isinstance(build.prune_fn(ExperimentConfig()), pruning.PruningRule)
