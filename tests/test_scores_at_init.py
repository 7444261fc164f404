"""Scores that read the model and data (snip, grasp, synflow) and magnitude_at_init,
each against an independent computation; every score with every selection."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import SMALL_FC, synthetic_dataset
from lottery_ticket.foundations import pruning
from lottery_ticket.foundations.model_fc import ModelFc

PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}


def _context(spec, weights, masks, data, **extra):
    return pruning.Context(masks, weights, initial=extra.pop("initial", weights),
                           model_fn=lambda w, m: ModelFc(spec, presets=w, masks=m, seed=0),
                           dataset_fn=lambda: data, **extra)


def _init(spec=SMALL_FC, seed=0):
    model = ModelFc(spec, seed=seed).build((784,))
    return model.masks, model.get_current_weights()


def test_snip_at_init_is_w_times_grad_of_the_initial_weights():
    data = synthetic_dataset()
    masks, initial = _init()
    rng = np.random.default_rng(1)
    trained = {name: w + rng.normal(size=w.shape).astype(np.float32)
               for name, w in initial.items()}
    model = ModelFc(SMALL_FC, presets=initial, masks=masks, seed=5).build((784,))
    x, y = data.train[0][data.batch_indices(0, 1)[0]], data.train[1][data.batch_indices(0, 1)[0]]
    with tf.GradientTape() as tape:
        loss = model.loss(model.forward(tf.constant(x)), tf.constant(y))
    kernels = model.kernel_variables
    grads = dict(zip(kernels, tape.gradient(loss, list(kernels.values()))))
    by_hand = {name: np.abs(initial[name].astype(np.float64) * grads[name].numpy())
               for name in masks}
    # At init the weights being pruned are the initial ones (what prune_at_init passes
    # as final); Snip(weights='initial') reads them beside trained final weights.
    for context, score in ((_context(SMALL_FC, initial, masks, data), pruning.Snip()),
                           (_context(SMALL_FC, trained, masks, data, initial=initial),
                            pruning.Snip(weights="initial"))):
        scores = score(context, list(masks), None)
        for name in masks:
            np.testing.assert_allclose(scores[name], by_hand[name], rtol=1e-6)
    at_final = pruning.Snip()(_context(SMALL_FC, trained, masks, data, initial=initial),
                              list(masks), None)
    assert not np.allclose(at_final["layer0"], by_hand["layer0"])


LINEAR = {"layers": [(6, None), (3, None)]}


def _synflow_closed_form(w1, w2, m1, m2):
    a1, a2 = np.abs(w1 * m1).astype(np.float64), np.abs(w2 * m2).astype(np.float64)
    # Input ones: W1[i, j] carries its |w| into unit j, which reaches the outputs
    # through row j of |W2|; W2[j, k] carries what reaches unit j, column j of |W1|.
    return {"layer0": a1 * a2.sum(axis=1)[None, :], "layer1": a2 * a1.sum(axis=0)[:, None]}


@pytest.mark.parametrize("scale", [1.0, 1e25])
def test_synflow_is_the_closed_form_of_a_two_layer_linear_net(scale):
    data = synthetic_dataset()
    masks, weights = _init(LINEAR, seed=3)
    masks = {name: m.copy() for name, m in masks.items()}
    masks["layer0"][::3] = 0  # a masked weight carries no flow
    masks["layer1"][0, 1] = 0
    # At 1e25 per layer R is ~1e50 times the unscaled one: float32 overflows, so
    # this checks the rescaled computation, unscaled in float64.
    weights = {name: w * np.float32(scale) for name, w in weights.items()}
    scores = pruning.SynFlow(rounds=1)(_context(LINEAR, weights, masks, data), list(masks),
                                       None)
    expected = _synflow_closed_form(weights["layer0"], weights["layer1"], masks["layer0"],
                                    masks["layer1"])
    for name in masks:
        assert scores[name].dtype == np.float64 and np.all(np.isfinite(scores[name]))
        np.testing.assert_allclose(scores[name], expected[name], rtol=1e-5,
                                   atol=1e-12 * expected[name].max())
        assert np.all(scores[name][masks[name] == 0] == 0)


def test_synflow_rounds_follow_the_exponential_schedule_to_the_exact_count():
    data = synthetic_dataset()
    masks, initial = _init()
    seen = []

    class Recording(pruning.SynFlow):
        def __call__(self, context, layers, seed):
            seen.append(sum(int(np.count_nonzero(context.masks[n])) for n in layers))
            return super().__call__(context, layers, seed)

    pruning.WEIGHT_SCORES.register("synflow_recording", Recording, replace=True)
    try:
        groups = [["layer0", "layer1", "layer2"]]
        percents = {name: 0.9 for name in masks}
        rule = pruning.PruningRule(percents, selection="global", groups=groups,
                                   scores=Recording(rounds=4))
        pruned = rule(masks, initial, context=_context(SMALL_FC, initial, masks, data))
    finally:
        pruning.WEIGHT_SCORES.unregister("synflow_recording") if hasattr(
            pruning.WEIGHT_SCORES, "unregister") else None
    total = sum(m.size for m in masks.values())
    end = total - pruning.count_to_prune(0.9, total)
    assert seen == [total] + [int(np.round(total * (end / total) ** (k / 4))) for k in (1, 2, 3)]
    assert sum(int(pruned[n].sum()) for n in pruned) == end
    once = pruning.PruningRule(percents, selection="global", groups=groups,
                               scores=pruning.SynFlow(rounds=1))(
        masks, initial, context=_context(SMALL_FC, initial, masks, data))
    assert any(not np.array_equal(once[n], pruned[n]) for n in masks)


def test_grasp_hessian_gradient_product_matches_finite_differences():
    spec = {"layers": [(12, "tanh"), (10, None)]}
    data = synthetic_dataset()
    masks, weights = _init(spec, seed=2)
    masks = {name: m.copy() for name, m in masks.items()}
    masks["layer0"][::5] = 0
    batches = [(data.train[0][rows], data.train[1][rows]) for rows in data.batch_indices(0, 2)]

    def gradient(values):
        model = ModelFc(spec, presets=values, masks=masks, seed=0).build((784,))
        return pruning.per_weight_quantity(model, batches)

    model = ModelFc(spec, presets=weights, masks=masks, seed=0)
    products = pruning.hessian_gradient_product(model, batches)
    g = gradient(weights)
    # H g ~ (g(w + eps g) - g(w - eps g)) / (2 eps), with g held fixed, in float64.
    eps = 1e-3
    up = gradient({n: (weights[n] + eps * g[n]).astype(np.float32) for n in weights})
    down = gradient({n: (weights[n] - eps * g[n]).astype(np.float32) for n in weights})
    for name in masks:
        differences = (up[name] - down[name]) / (2 * eps)
        error = np.linalg.norm(products[name] - differences) / np.linalg.norm(differences)
        assert error < 5e-3, (name, error)
        assert np.all(products[name][masks[name] == 0] == 0)
    # grasp removes the paper's highest -w * Hg, i.e. the lowest w * Hg.
    scores = pruning.Grasp(batches=2)(_context(spec, weights, masks, data), list(masks), None)
    for name in masks:
        np.testing.assert_allclose(scores[name], weights[name] * products[name], rtol=1e-6)
    pruned = pruning.PruningRule({"layer0": 0.5}, scores="grasp", score_config={
        "batches": 2})(masks, weights, context=_context(spec, weights, masks, data))
    paper = -weights["layer0"].astype(np.float64) * products["layer0"]
    alive = masks["layer0"] == 1
    removed = alive & (pruned["layer0"] == 0)
    kept = pruned["layer0"] == 1
    assert removed.sum() == pruning.count_to_prune(0.5, int(alive.sum()))
    assert paper[removed].min() >= paper[kept].max()


def test_magnitude_at_init_ranks_the_initial_weights_and_inverted_the_other_end():
    masks, initial = _init()
    final = {name: np.flip(w).copy() for name, w in initial.items()}
    context = pruning.Context(masks, final, initial=initial)
    at_init = pruning.prune(PERCENTS, masks, final, scores="magnitude_at_init", context=context)
    expected = pruning.prune(PERCENTS, masks, initial)
    for name in masks:
        np.testing.assert_array_equal(at_init[name], expected[name])
    with pytest.raises(ValueError, match="initial weights"):
        pruning.prune(PERCENTS, masks, final, scores="magnitude_at_init")
    inverted = pruning.PruningRule(PERCENTS, scores=pruning.Inverted("magnitude"))(masks,
                                                                                   final)
    for name in masks:
        removed = inverted[name] == 0
        assert removed.sum() == pruning.count_to_prune(PERCENTS[name], masks[name].size)
        assert np.abs(final[name][removed]).min() >= np.abs(final[name][~removed]).max()
    rule = pruning.PruningRule(PERCENTS, scores=pruning.Inverted("random"), seed=3)
    assert pruning.PruningRule.from_config(rule.get_config()).get_config() == rule.get_config()
    with pytest.raises(ValueError, match="seed"):
        pruning.PruningRule(PERCENTS, scores=pruning.Inverted("random"))


@pytest.mark.parametrize("scores", ["snip", "grasp", "synflow", "magnitude_at_init",
                                    "magnitude", "random"])
@pytest.mark.parametrize("selection", ["layerwise", "global"])
@pytest.mark.parametrize("oneshot", [False, True])
def test_every_score_prunes_exact_counts_with_every_selection(scores, selection, oneshot):
    data = synthetic_dataset()
    masks, initial = _init()
    config = {"rounds": 3} if scores == "synflow" else None
    rule = pruning.PruningRule(PERCENTS, selection=selection, scores=scores,
                               seed=1 if scores == "random" else None, oneshot=oneshot,
                               score_config=config)
    level = {"level": 3} if oneshot else {}
    context = _context(SMALL_FC, initial, masks, data)
    first = rule(masks, initial, context=context, **level)
    second = rule(first, initial, context=context.replace(masks=first),
                  **({"level": 4} if oneshot else {})) if not oneshot else first
    again = pruning.PruningRule.from_config(rule.get_config())(masks, initial,
                                                               context=context, **level)
    expected = {name: m.size for name, m in masks.items()}
    for _ in range(3 if oneshot else 1):
        expected = {n: s - pruning.count_to_prune(PERCENTS[n], s) for n, s in expected.items()}
    if selection == "layerwise":
        assert {n: int(first[n].sum()) for n in masks} == expected
    else:
        pools = [["layer0", "layer1"], ["layer2"]]
        for pool in pools:
            assert sum(int(first[n].sum()) for n in pool) == sum(expected[n] for n in pool)
    for name in masks:
        np.testing.assert_array_equal(first[name], again[name])  # reproducible
        assert np.all(second[name] <= first[name])  # nothing revived


def test_synflow_on_a_conv_net_conserves_the_flow_in_every_layer():
    """R is homogeneous of degree 1 in each layer's kernel (zero biases, ReLU, max
    pooling), so by Euler's theorem each layer's synflow scores sum to R itself."""
    import types
    from lottery_ticket.foundations.model_conv import ModelConv

    def make(weights=None, masks=None):
        return ModelConv([[4, 4]], dense_units=(8,), outputs=3, presets=weights, masks=masks,
                         seed=0)

    model = make().build((8, 8, 1))
    weights, masks = model.get_current_weights(), {n: m.copy() for n, m in model.masks.items()}
    masks["conv0"].reshape(-1)[::4] = 0
    shape = types.SimpleNamespace(example_shape=(8, 8, 1))
    context = pruning.Context(masks, weights, model_fn=make, dataset_fn=lambda: shape)
    scores = pruning.SynFlow(rounds=1)(context, list(masks), None)
    flow_model = make({n: np.abs(w) for n, w in weights.items()}, masks).build((8, 8, 1))
    flow = float(tf.reduce_sum(flow_model.forward(tf.ones((1, 8, 8, 1)), training=False)))
    for name in masks:
        assert np.all(scores[name] >= 0) and np.all(scores[name][masks[name] == 0] == 0)
        np.testing.assert_allclose(scores[name].sum(), flow, rtol=1e-4)
    # Two layers scaled by 1e30 each scale every score by 1e60, past float32's range.
    big = dict(weights, conv0=weights["conv0"] * np.float32(1e30),
               conv1=weights["conv1"] * np.float32(1e30))
    scaled = pruning.SynFlow(rounds=1)(context.replace(final=big), list(masks), None)
    for name in masks:
        np.testing.assert_allclose(scaled[name], scores[name] * 1e60, rtol=1e-4,
                                   atol=1e-10 * scores[name].max() * 1e60)
