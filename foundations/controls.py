"""Masks and initial weights for the control experiments of section 2.2.

A winning ticket is a mask plus the initial values of its surviving weights.
Each control keeps one of the two and randomizes the other:

* random reinitialization keeps the mask and draws new initial values:
  ``reinit`` from the model's own initializer (a fresh model seed, see
  ``reinit_seed``), ``reuse`` by sampling each weight from the ticket's
  initial values in that layer, and ``reuse_sign`` likewise but keeping the
  sign the ticket's initial weight had at that position;
* random rearrangement keeps the initial values and moves the connections
  to random positions within each layer;
* random pruning keeps the original (level-0) initialization and draws a
  random mask with the ticket's number of surviving weights per layer.

Every function is deterministic for a given seed; each layer draws from its
own stream, derived from the seed, the control's name and the layer's name.
"""

import zlib
from typing import Mapping, Tuple

import numpy as np
from lottery_ticket.foundations.save_restore import Network


REINITIALIZE_MODES = ("reinit", "reuse", "reuse_sign")


def layer_rng(seed: int, purpose: str, layer: str) -> np.random.Generator:
    """The random stream of one layer for one control.

    Args:
      seed: the control's seed.
      purpose: which control draws ('reinit', 'rearrange', 'random_prune').
      layer: the layer's name.
    """
    return np.random.default_rng([int(seed), zlib.crc32(purpose.encode()),
                                  zlib.crc32(layer.encode())])


def reinit_seed(seed: int) -> int:
    """A model seed for 'reinit' that no plain integer seed of a lottery run equals.

    Lottery trials seed their models with small integers; drawing the control's
    model seed from a stream keyed by the control's seed keeps a reinit control
    from silently reproducing the ticket's own initialization.

    Args:
      seed: the control's seed.
    """
    return int(layer_rng(seed, "reinit", "model").integers(2**31 - 1))


def _survivors(masks: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(masks[name]) != 0


def _check(masks: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray]) -> None:
    for name, mask in masks.items():
        if name not in initial:
            raise ValueError(f"layer {name!r} has a mask but no initial weights; the "
                             f"initial weights have {sorted(initial)}.")
        if np.shape(initial[name]) != np.shape(mask):
            raise ValueError(f"layer {name!r}: mask shape {np.shape(mask)} differs from "
                             f"initial weights shape {np.shape(initial[name])}.")


def reuse_presets(masks: Mapping[str, np.ndarray], ticket_initial: Mapping[str, np.ndarray],
                  seed: int, keep_sign: bool = False) -> Network:
    """Initial weights sampled from the ticket's own initial values, per layer.

    Args:
      masks: the ticket's masks.
      ticket_initial: the ticket's initial weights (only survivors are read).
      seed: the control's seed.
      keep_sign: 'reuse_sign': each weight takes a magnitude sampled from the
        layer's initial values and the sign of the ticket's initial weight at
        its own position.

    Returns:
      layer -> initial weights; pruned positions are 0.
    """
    _check(masks, ticket_initial)
    purpose = "reuse_sign" if keep_sign else "reuse"
    presets = {}
    for name in masks:
        alive = _survivors(masks, name)
        values = np.asarray(ticket_initial[name], np.float32)[alive]
        out = np.zeros(np.shape(masks[name]), np.float32)
        if values.size:
            rng = layer_rng(seed, purpose, name)
            drawn = rng.choice(values, size=values.size, replace=True)
            if keep_sign:
                drawn = np.abs(drawn) * np.sign(values)
            out[alive] = drawn
        presets[name] = out
    return presets


def rearrange(masks: Mapping[str, np.ndarray], ticket_initial: Mapping[str, np.ndarray],
              seed: int) -> Tuple[Network, Network]:
    """Moves each layer's surviving connections to random positions.

    Args:
      masks: layer -> the ticket's mask.
      ticket_initial: layer -> the ticket's initial weights.
      seed: the control's seed.

    Returns:
      The pair (masks, presets). Per layer, the same number of surviving
      weights at uniformly random positions, carrying the ticket's initial
      values (in random order) to their new places.
    """
    _check(masks, ticket_initial)
    new_masks, presets = {}, {}
    for name in masks:
        shape = np.shape(masks[name])
        alive = _survivors(masks, name).reshape(-1)
        values = np.asarray(ticket_initial[name], np.float32).reshape(-1)[alive]
        rng = layer_rng(seed, "rearrange", name)
        positions = rng.choice(alive.size, size=values.size, replace=False)
        mask = np.zeros(alive.size, np.float32)
        mask[positions] = 1.0
        preset = np.zeros(alive.size, np.float32)
        preset[positions] = rng.permutation(values)
        new_masks[name] = mask.reshape(shape)
        presets[name] = preset.reshape(shape)
    return new_masks, presets


def random_masks(masks: Mapping[str, np.ndarray], seed: int) -> Network:
    """Masks with exactly as many survivors per layer as `masks`, placed at random.

    Args:
      masks: layer -> the ticket's mask (how many survive per layer).
      seed: the control's seed.
    """
    new_masks = {}
    for name, mask in masks.items():
        size = int(np.size(mask))
        count = int(np.count_nonzero(mask))
        rng = layer_rng(seed, "random_prune", name)
        flat = np.zeros(size, np.float32)
        flat[rng.choice(size, size=count, replace=False)] = 1.0
        new_masks[name] = flat.reshape(np.shape(mask))
    return new_masks
