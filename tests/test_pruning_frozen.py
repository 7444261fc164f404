"""Masks and one-shot rates frozen from the release before pruning rules became objects.

Every case runs the public API on fixed inputs (rounded weights, so ties abound, and
partly pruned masks) and compares a digest of each mask, and its count of survivors,
with what the previous implementation gave: a rewrite of the rules must keep the
results bit for bit.
"""

import hashlib

import numpy as np
import pytest

from lottery_ticket.foundations import experiment, pruning

FC = {"layer0": (20, 12), "layer1": (12, 8), "layer2": (8, 4)}
CONV = {"conv0": (3, 3, 2, 6), "conv1": (3, 3, 6, 8), "fc0": (32, 10), "fc1": (10, 5)}
FC_PERCENTS = {"layer0": 0.2, "layer1": 0.2, "layer2": 0.1}
CONV_PERCENTS = {"conv0": 0.1, "conv1": 0.1, "fc0": 0.2}


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    # Rounded to one decimal: many equal magnitudes, where tie-breaking shows.
    weights = {name: np.round(rng.normal(size=shape), 1) for name, shape in shapes.items()}
    masks = {name: (rng.random(shape) > 0.15).astype(np.float32)
             for name, shape in shapes.items()}
    return masks, weights


def _digest(masks):
    parts = []
    for name in sorted(masks):
        mask = np.asarray(masks[name])
        assert mask.dtype == np.float32 and np.isin(mask, (0, 1)).all()
        bits = np.packbits(mask.reshape(-1).astype(bool)).tobytes()
        parts.append(f"{name}:{int(mask.sum())}:{hashlib.sha256(bits).hexdigest()[:16]}")
    return " ".join(parts)


def _iterate(percents, shapes, levels, **options):
    masks, weights = _inputs(shapes, 11)
    rng = np.random.default_rng(5)
    for _ in range(levels):
        masks = pruning.prune(percents, masks, weights, **options)
        weights = {name: np.round(w + rng.normal(size=w.shape) * 0.3, 1)
                   for name, w in weights.items()}
    return masks


CASES = {
    "layerwise-magnitude": lambda: _iterate(FC_PERCENTS, FC, 3),
    "prune_by_percent": lambda: pruning.prune_by_percent(FC_PERCENTS, *_inputs(FC, 11)),
    "layerwise-random": lambda: _iterate(FC_PERCENTS, FC, 3, scores="random", seed=7),
    "global-magnitude": lambda: _iterate(FC_PERCENTS, FC, 3, selection="global"),
    "global-random": lambda: _iterate(FC_PERCENTS, FC, 2, selection="global",
                                      scores="random", seed=3),
    "global-groups": lambda: _iterate({"layer0": 0.3, "layer1": 0.3, "layer2": 0.3}, FC, 2,
                                      selection="global",
                                      groups=[["layer0", "layer2"], ["layer1"]]),
    "global-conv": lambda: _iterate(CONV_PERCENTS, CONV, 2, selection="global",
                                    order=list(CONV)),
    "unit-magnitude": lambda: _iterate({"layer0": 0.25, "layer1": 0.25}, FC, 2,
                                       selection="unit"),
    "unit-output": lambda: _iterate({"layer0": 0.25, "layer1": 0.25}, FC, 2,
                                    selection="unit", scores="output_magnitude"),
    "unit-product": lambda: _iterate({"layer0": 0.25, "layer1": 0.25}, FC, 2,
                                     selection="unit", scores="magnitude_product"),
    "unit-random": lambda: _iterate({"layer0": 0.25, "layer1": 0.25}, FC, 2,
                                    selection="unit", scores="random", seed=9),
    "unit-keep-next": lambda: _iterate({"layer0": 0.25}, FC, 1, selection="unit",
                                       prune_next=False),
    "unit-conv": lambda: _iterate({"conv0": 0.2, "conv1": 0.25, "fc0": 0.2}, CONV, 2,
                                  selection="unit", scores="magnitude_product",
                                  order=list(CONV)),
}
for _selection in pruning.SELECTIONS:
    _percents = {"layer0": 0.2, "layer1": 0.2} if _selection == "unit" else FC_PERCENTS
    CASES[f"oneshot-{_selection}"] = (
        lambda s=_selection, p=_percents: experiment.oneshot_pruning(p, selection=s)(
            *_inputs(FC, 11), level=3))

EXPECTED = {
    'global-conv':
        'conv0:76:7cd5d168a4780b24 conv1:297:c28356b06c029d77 fc0:175:68eaca2ae5d34448 fc1:43:e122325fae1543e6',
    'global-groups':
        'layer0:102:cf3b55fff0dd484e layer1:41:7833718bd12c6cbb layer2:13:bff7a9106fdf1ef4',
    'global-magnitude':
        'layer0:110:86f12ce036df5cd4 layer1:42:7382f495e76d4282 layer2:18:1fafa294905c7089',
    'global-random':
        'layer0:140:a85e36448d21a0dd layer1:50:bcc555f2923764c4 layer2:20:8a63eab15fc62654',
    'layerwise-magnitude':
        'layer0:108:319a3c7f2da82af5 layer1:43:e381867e962ee96d layer2:18:1fafa294905c7089',
    'layerwise-random':
        'layer0:108:ec22b3676c8cb85b layer1:43:6657b680f74d1cb6 layer2:18:8ca03a6e44477227',
    'oneshot-global':
        'layer0:103:15b8918ee121922d layer1:49:67f8ba02ab261392 layer2:18:db2ec9573913d11e',
    'oneshot-layerwise':
        'layer0:108:7e4bf34c6dd57b35 layer1:43:b33990ddaf1ae641 layer2:18:db2ec9573913d11e',
    'oneshot-unit':
        'layer0:102:91df48f634fd861d layer1:22:48a854ff70ecd1a4 layer2:13:60fb83c3eca31086',
    'prune_by_percent':
        'layer0:169:8d20ba33bc2c32a2 layer1:68:447eefe83422c8e7 layer2:22:c86fe0a8cdd85055',
    'unit-conv':
        'conv0:62:39a08ee0181dfb81 conv1:121:4b0bc3ff5f60ac1d fc0:82:6dabf6e9cfd64d80 fc1:28:0db35f876e2694eb',
    'unit-keep-next':
        'layer0:158:8a81d4b3de3560e3 layer1:85:3cafd33925ffd909 layer2:25:f970d5074455f19b',
    'unit-magnitude':
        'layer0:120:73569647725f0e19 layer1:25:234ae333fd8e3e54 layer2:14:5c6187d968cd3c6c',
    'unit-output':
        'layer0:126:a1b5d3296bdfed63 layer1:23:4d1f0092374e8bce layer2:12:d1328a4db05d7b55',
    'unit-product':
        'layer0:122:824bbe5473c74be1 layer1:24:e70e07f786cff7b4 layer2:14:5d9e78be9fe3262b',
    'unit-random':
        'layer0:125:5279a8c89504be2f layer1:24:4da23c8e713d1f08 layer2:13:672a7c524837a934',
}

RATES = {
    'layerwise': {
        1: {'layer0': '0x1.97a8a5013698ep-3', 'layer1': '0x1.999999999999ap-3', 'layer2': '0x1.eb851eb851eb8p-4'},
        3: {'layer0': '0x1.f3de0747953b7p-2', 'layer1': '0x1.f9f9f9f9f9fa0p-2', 'layer2': '0x1.1eb851eb851ecp-2'},
        7: {'layer0': '0x1.953b7342bad7fp-1', 'layer1': '0x1.9393939393939p-1', 'layer2': '0x1.0a3d70a3d70a4p-1'},
    },
    'global': {
        1: {'layer0': '0x1.983759f229837p-3', 'layer1': '0x1.983759f229837p-3', 'layer2': '0x1.eb851eb851eb8p-4'},
        3: {'layer0': '0x1.f22983759f22ap-2', 'layer1': '0x1.f22983759f22ap-2', 'layer2': '0x1.1eb851eb851ecp-2'},
        7: {'layer0': '0x1.94c1bacf914c2p-1', 'layer1': '0x1.94c1bacf914c2p-1', 'layer2': '0x1.0a3d70a3d70a4p-1'},
    },
    'unit': {
        1: {'layer0': '0x1.5555555555555p-3', 'layer1': '0x1.0000000000000p-2'},
        3: {'layer0': '0x1.0000000000000p-1', 'layer1': '0x1.0000000000000p-1'},
        7: {'layer0': '0x1.aaaaaaaaaaaabp-1', 'layer1': '0x1.8000000000000p-1'},
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_masks_are_those_of_the_previous_release(case):
    assert _digest(CASES[case]()) == EXPECTED[case]


@pytest.mark.parametrize("selection", pruning.SELECTIONS)
def test_oneshot_rates_are_those_of_the_previous_release(selection):
    masks, _ = _inputs(FC, 11)
    percents = {"layer0": 0.2, "layer1": 0.2} if selection == "unit" else FC_PERCENTS
    rates = {level: experiment.oneshot_percents(percents, masks, level, selection)
             for level in (1, 3, 7)}
    assert {level: {name: float(rate).hex() for name, rate in values.items()}
            for level, values in rates.items()} == RATES[selection]
