"""Exact counts for magnitude pruning, union and intersection."""

import numpy as np
import pytest

from lottery_ticket.foundations import pruning
from lottery_ticket.foundations import union
from lottery_ticket.mnist_fc import constants


def test_prunes_exactly_the_smallest_surviving_weights():
    weights = {"a": np.array([[0.5, -0.1, 0.3], [-0.9, 0.2, 0.05]])}
    masks = {"a": np.ones((2, 3))}
    new = pruning.prune_by_percent({"a": 0.5}, masks, weights)
    np.testing.assert_array_equal(new["a"], [[1, 0, 1], [1, 0, 0]])


def test_count_is_round_of_percent_times_surviving():
    assert pruning.count_to_prune(0.2, 235200) == 47040
    assert pruning.count_to_prune(0.1, 1000) == 100
    assert pruning.count_to_prune(0.2, 7) == 1  # 1.4
    assert pruning.count_to_prune(0.25, 6) == 2  # 1.5 rounds up
    assert pruning.count_to_prune(0.2, 2) == 0  # 0.4
    assert pruning.count_to_prune(1.0, 9) == 9


def test_lenet_counts_after_k_levels():
    rng = np.random.default_rng(0)
    shapes = {"layer0": (784, 300), "layer1": (300, 100), "layer2": (100, 10)}
    masks = {name: np.ones(shape) for name, shape in shapes.items()}
    expected = {name: int(np.prod(shape)) for name, shape in shapes.items()}
    for level in range(1, 6):
        weights = {name: rng.normal(size=shape) for name, shape in shapes.items()}
        masks = pruning.prune_by_percent(constants.PRUNE_PERCENTS, masks, weights)
        for name, percent in constants.PRUNE_PERCENTS.items():
            expected[name] -= int(np.floor(percent * expected[name] + 0.5))
            assert int(masks[name].sum()) == expected[name], (level, name)
    # Five rounds of 20% leave exactly these many of layer0's 235,200 weights.
    assert expected["layer0"] == 77070


def test_never_revives_a_pruned_weight():
    # The pruned weights have the largest final magnitudes; they must stay pruned.
    weights = {"a": np.array([100.0, 100.0, 1.0, 2.0, 3.0])}
    masks = {"a": np.array([0.0, 0.0, 1.0, 1.0, 1.0])}
    new = pruning.prune_by_percent({"a": 1 / 3}, masks, weights)
    np.testing.assert_array_equal(new["a"], [0, 0, 0, 1, 1])


def test_ties_are_broken_by_index():
    weights = {"a": np.array([0.5, -0.5, 0.5, 0.5])}
    new = pruning.prune_by_percent({"a": 0.5}, {"a": np.ones(4)}, weights)
    np.testing.assert_array_equal(new["a"], [0, 0, 1, 1])


def test_layers_without_percent_keep_their_masks():
    masks = {"a": np.ones(4), "b": np.array([1.0, 0.0, 1.0, 1.0])}
    weights = {"a": np.arange(4.0), "b": np.arange(4.0)}
    new = pruning.prune_by_percent({"a": 0.5}, masks, weights)
    np.testing.assert_array_equal(new["b"], masks["b"])
    assert new["b"] is not masks["b"]


@pytest.mark.parametrize("percent", [-0.1, 1.5])
def test_percent_outside_unit_interval_is_an_error(percent):
    with pytest.raises(ValueError, match="fraction in"):
        pruning.prune_by_percent({"a": percent}, {"a": np.ones(3)}, {"a": np.ones(3)})


def test_unknown_layer_is_an_error():
    with pytest.raises(ValueError, match="'b'.*no mask"):
        pruning.prune_by_percent({"b": 0.2}, {"a": np.ones(3)}, {"a": np.ones(3)})


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        pruning.prune_by_percent({"a": 0.2}, {"a": np.ones(3)}, {"a": np.ones(4)})


def test_union_and_intersect():
    m1 = {"a": np.array([1.0, 0.0, 1.0, 0.0])}
    m2 = {"a": np.array([1.0, 1.0, 0.0, 0.0])}
    np.testing.assert_array_equal(union.union([m1, m2])["a"], [1, 1, 1, 0])
    np.testing.assert_array_equal(union.union(m1, m2)["a"], [1, 1, 1, 0])
    np.testing.assert_array_equal(union.intersect([m1, m2])["a"], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="same layers"):
        union.union([m1, {"b": np.ones(4)}])


@pytest.mark.parametrize("rate, reason", [
    (True, "a bool is not a rate (True would read as 1.0)"),
    (np.bool_(False), "a bool is not a rate"), ("0.2", "text is not a rate"),
    (float("nan"), "NaN is not a number"), (-0.1, "a negative rate prunes nothing"),
    (1, "a rate of 1 or more prunes every surviving weight, which empties the layer"),
    (1.0, "empties the layer"), (1.5, "empties the layer"), (None, "not a number"),
])
def test_one_rate_check_for_the_configuration_and_pruning(rate, reason):
    from lottery_ticket.experiments.config import ExperimentConfig
    messages = []
    for attempt in (lambda: ExperimentConfig().replace(prune_percents={"layer0": rate}),
                    lambda: pruning.prune({"layer0": rate}, {"layer0": np.ones(4)},
                                          {"layer0": np.arange(4.0)})):
        with pytest.raises(ValueError, match="it is a fraction in \\[0, 1\\)") as error:
            attempt()
        assert reason in str(error.value) and "Fix: give a fraction below 1" in str(error.value)
        messages.append(str(error.value).split(" is ", 1)[1])
    # The same words after the name of the setting: one validator.
    assert messages[0] == messages[1]
    assert pruning.check_rate(0.999, "x") == 0.999 and pruning.check_rate(0, "x") == 0.0
