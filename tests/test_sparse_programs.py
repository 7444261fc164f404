"""How many programs the sparse levels of a trial compile, and that a level's
numbers do not depend on which (padded) program trains it."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_dataset
from lottery_ticket.foundations import trainer
from lottery_ticket.foundations.model_fc import ModelFc

WIDE_FC = {"layers": [(120, "relu"), (60, "relu"), (10, None)]}
MOMENTUM = functools.partial(tf.keras.optimizers.SGD, learning_rate=0.05, momentum=0.9)


def _train(dataset, model, directory, iterations=30, **params):
    return trainer.train(dataset, model, MOMENTUM, ("iterations", iterations),
                         str(directory), progress=False, save_summaries=False,
                         test_interval=10, validate_interval=15, **params)


def trial_masks(levels=31, seed=0):
    """A lottery trial's nested masks of WIDE_FC: hidden layers keep 80% a level,
    the output layer 90% (as the paper prunes LeNet)."""
    rng = np.random.default_rng(seed)
    scores = {"layer0": rng.random((784, 120)), "layer1": rng.random((120, 60)),
              "layer2": rng.random((60, 10))}
    for level in range(levels):
        masks = {}
        for name, score in scores.items():
            kept = round(score.size * (0.9 if name == "layer2" else 0.8) ** level)
            order = np.argsort(score, axis=None)[::-1][:kept]
            mask = np.zeros(score.size, np.float32)
            mask[order] = 1
            masks[name] = mask.reshape(score.shape)
        yield level, masks


def test_a_trials_sparse_levels_share_a_handful_of_compiled_programs():
    # A fresh data set: engines kept for others do not count.
    dataset = synthetic_dataset()
    engines, programs = [], {}
    for level, masks in trial_masks():
        model = ModelFc(WIDE_FC, masks=masks, seed=level).build([784])
        steps = trainer.compiled_steps(dataset, model, MOMENTUM(), xla="on", sparse_below=0.05)
        try:
            if not any(steps is engine for engine in engines):
                engines.append(steps)  # a new program set: traced and compiled once
            if steps.sparse_layers:
                programs.setdefault(len(engines), []).append(level)
                kept = {name: int(masks[name].sum()) for name in steps.sparse_layers}
                assert all(kept[name] <= size for name, size in steps.sparse_sizes.items())
        finally:
            trainer.finish_steps(steps, model)
    # Levels 14-30 train sparsely (17 levels), and evaluate through their survivors
    # from the first (below 5%, as they train). New programs only where the sparse
    # layers change (level 29 adds the output layer) and when the survivors fall
    # below a quarter of the compiled sizes: 4 programs, where the sizes of 2x
    # slack compiled 6.
    assert all(engines[index - 1].sparse_evaluation for index in programs)
    assert [levels[0] for levels in programs.values()] == [14, 20, 26, 29]
    assert sum(len(levels) for levels in programs.values()) == 17


@pytest.mark.slow
def test_a_level_gives_the_same_bits_whichever_engine_it_reuses(tmp_path):
    dataset = synthetic_dataset()
    levels = dict(trial_masks())
    for level in (17, 22):  # the engine compiled at level 17 serves level 22
        _train(dataset, ModelFc(WIDE_FC, masks=levels[level], seed=1), tmp_path / str(level),
               xla="on", sparse_below=0.05)
    reused = _train(dataset, ModelFc(WIDE_FC, masks=levels[22], seed=2), tmp_path / "reused",
                    xla="on", sparse_below=0.05)
    assert reused.record["compile_seconds"] == 0
    steps = trainer.compiled_steps(dataset, ModelFc(WIDE_FC, masks=levels[22]).build([784]),
                                   MOMENTUM(), xla="on", sparse_below=0.05)
    try:
        padded = steps.sparse_sizes
        assert steps.sparse_evaluation
    finally:
        trainer.finish_steps(steps, ModelFc(WIDE_FC, masks=levels[22]).build([784]))
    assert padded["layer0"] > 2 * int(levels[22]["layer0"].sum())
    # The same level on a data set of its own: compiled for its own survivors.
    fresh = _train(synthetic_dataset(), ModelFc(WIDE_FC, masks=levels[22], seed=2),
                   tmp_path / "fresh", xla="on", sparse_below=0.05)
    assert fresh.record["compile_seconds"] > 0
    for layer in fresh.final:
        np.testing.assert_array_equal(reused.final[layer], fresh.final[layer])
    assert reused.metrics == fresh.metrics


def test_a_reused_programs_padding_is_weighed_against_a_compile():
    from lottery_ticket.foundations.training.sparse import (
        SPARSE_COMPILE_SECONDS, SPARSE_SECONDS_PER_PADDING_ITERATION, bucket, sparse_fits)
    layout = (("layer0", 1000),)
    # What a fresh compile would make serves a run of any length.
    assert sparse_fits({"layer0": bucket(1000)}, layout, iterations=10 ** 9)
    # Padding beyond bucket(1000) = 1024: worth a compile only in a long run.
    extra = 3000 - bucket(1000)
    affordable = int(SPARSE_COMPILE_SECONDS / (extra * SPARSE_SECONDS_PER_PADDING_ITERATION))
    assert sparse_fits({"layer0": 3000}, layout)
    assert sparse_fits({"layer0": 3000}, layout, iterations=affordable)
    assert not sparse_fits({"layer0": 3000}, layout, iterations=2 * affordable)
    # Two layers: the padding beyond each layer's bucket is summed; a layer below
    # its bucket (here layer1, compiled for exactly its survivors) adds none.
    two = (("layer0", 1000), ("layer1", 100))
    assert bucket(100) > 100
    assert sparse_fits({"layer0": 3000, "layer1": 100}, two, iterations=affordable)
    assert not sparse_fits({"layer0": 3000, "layer1": 400}, two, iterations=affordable)
    # Never more than SPARSE_SLACK times the survivors, nor fewer than them.
    assert not sparse_fits({"layer0": 4001}, layout, iterations=1)
    assert not sparse_fits({"layer0": 999}, layout)
    assert not sparse_fits({"layer0": 1000, "layer1": 16}, layout)


@pytest.mark.slow
def test_a_long_run_compiles_its_own_program_rather_than_reuse_a_padded_one(
        tmp_path, monkeypatch):
    from lottery_ticket.foundations.training import sparse
    dataset = synthetic_dataset()
    levels = dict(trial_masks())
    _train(dataset, ModelFc(WIDE_FC, masks=levels[17], seed=1), tmp_path / "17",
           xla="on", sparse_below=0.05)
    short = _train(dataset, ModelFc(WIDE_FC, masks=levels[22], seed=1), tmp_path / "short",
                   xla="on", sparse_below=0.05)
    assert short.record["compile_seconds"] == 0  # level 17's program serves it
    # A compile that costs next to nothing: the 30-iteration run's padding outweighs
    # it, as a run of millions would weigh it (trainer.train passes its length on).
    monkeypatch.setattr(sparse, "SPARSE_COMPILE_SECONDS", 1e-9)
    long = _train(dataset, ModelFc(WIDE_FC, masks=levels[22], seed=1), tmp_path / "long",
                  xla="on", sparse_below=0.05)
    assert long.record["compile_seconds"] > 0
    steps = trainer.compiled_steps(dataset, ModelFc(WIDE_FC, masks=levels[22]).build([784]),
                                   MOMENTUM(), xla="on", sparse_below=0.05, iterations=30)
    try:
        kept = {name: int(levels[22][name].sum()) for name in steps.sparse_layers}
        assert steps.sparse_sizes == {name: sparse.bucket(count)
                                      for name, count in kept.items()}
    finally:
        trainer.finish_steps(steps, ModelFc(WIDE_FC, masks=levels[22]).build([784]))
    # Padding changes no number.
    for layer in long.final:
        np.testing.assert_array_equal(short.final[layer], long.final[layer])
    assert short.metrics == long.metrics
