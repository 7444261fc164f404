"""Control experiments: what each keeps from the ticket and what it randomizes."""

import os

import numpy as np
import pytest

from lottery_ticket.foundations import controls
from lottery_ticket.foundations import paths
from lottery_ticket.foundations import runs
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import constants
from lottery_ticket.mnist_fc import lottery_experiment
from lottery_ticket.mnist_fc import random_prune
from lottery_ticket.mnist_fc import rearrange
from lottery_ticket.mnist_fc import reinitialize

TINY = constants.DEFAULT.replace(training_len=("iterations", 30), test_interval=10,
                                validate_interval=15)


def ticket(seed=0):
    rng = np.random.default_rng(seed)
    masks = {"a": (rng.random((40, 30)) < 0.3).astype(np.float32),
             "b": (rng.random((30, 10)) < 0.5).astype(np.float32)}
    initial = {name: rng.normal(size=m.shape).astype(np.float32) * m
               for name, m in masks.items()}
    return masks, initial


def test_reuse_samples_the_layers_own_initial_values():
    masks, initial = ticket()
    presets = controls.reuse_presets(masks, initial, seed=1)
    for name, mask in masks.items():
        alive = mask == 1
        assert not presets[name][~alive].any()
        assert np.isin(presets[name][alive], initial[name][alive]).all()
        assert not np.array_equal(presets[name][alive], initial[name][alive])


def test_reuse_sign_keeps_each_weights_sign():
    masks, initial = ticket()
    presets = controls.reuse_presets(masks, initial, seed=1, keep_sign=True)
    for name, mask in masks.items():
        alive = mask == 1
        np.testing.assert_array_equal(np.sign(presets[name][alive]),
                                      np.sign(initial[name][alive]))
        assert np.isin(np.abs(presets[name][alive]), np.abs(initial[name][alive])).all()


def test_rearrange_moves_positions_and_keeps_the_values():
    masks, initial = ticket()
    new_masks, presets = controls.rearrange(masks, initial, seed=2)
    for name, mask in masks.items():
        assert int(new_masks[name].sum()) == int(mask.sum())
        assert not np.array_equal(new_masks[name], mask)
        np.testing.assert_array_equal(np.sort(presets[name][new_masks[name] == 1]),
                                      np.sort(initial[name][mask == 1]))
        assert not presets[name][new_masks[name] == 0].any()


def test_random_masks_keep_exact_counts():
    masks, _ = ticket()
    new_masks = controls.random_masks(masks, seed=3)
    for name, mask in masks.items():
        assert int(new_masks[name].sum()) == int(mask.sum())
        assert not np.array_equal(new_masks[name], mask)


@pytest.mark.parametrize("make", [
    lambda m, i, s: controls.reuse_presets(m, i, s),
    lambda m, i, s: controls.reuse_presets(m, i, s, keep_sign=True),
    lambda m, i, s: controls.rearrange(m, i, s)[1],
    lambda m, i, s: controls.random_masks(m, s),
], ids=["reuse", "reuse_sign", "rearrange", "random_prune"])
def test_deterministic_per_seed_and_different_across_seeds(make):
    masks, initial = ticket()
    a, b, c = make(masks, initial, 5), make(masks, initial, 5), make(masks, initial, 6)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        assert not np.array_equal(a[name], c[name])


def test_reinit_seed_differs_from_plain_seeds():
    assert controls.reinit_seed(1) == controls.reinit_seed(1)
    assert controls.reinit_seed(1) not in range(0, 10000)
    assert controls.reinit_seed(1) != controls.reinit_seed(2)


@pytest.fixture(scope="module")
def trial(tmp_path_factory, fashion_mnist_dir):
    """A real two-level lottery trial, tiny, on Fashion-MNIST."""
    directory = str(tmp_path_factory.mktemp("experiment") / "trial1")
    lottery_experiment.run_experiment(directory, fashion_mnist_dir, TINY, levels=2, seed=1)
    return directory


def _ticket_dirs(trial, level=2):
    run = paths.run(trial, level)
    return paths.masks(run), paths.initial(run), paths.initial(paths.run(trial, 0))


def _load(run):
    return (save_restore.restore_network(paths.masks(run)),
            save_restore.restore_network(paths.initial(run)),
            save_restore.restore_network(paths.final(run)))


@pytest.mark.parametrize("mode", ["reinit", "reuse", "reuse_sign"])
def test_reinitialize_runs_keep_the_tickets_masks(trial, fashion_mnist_dir, mode):
    masks_dir, initial_dir, _ = _ticket_dirs(trial)
    ticket_masks = save_restore.restore_network(masks_dir)
    ticket_initial = save_restore.restore_network(initial_dir)
    results = {}
    for run_id, seed in ((1, 11), (2, 11), (3, 12)):
        run = paths.run(trial, 2, mode, run_id)
        reinitialize.reinitialize(run, masks_dir, initial_dir, mode, seed,
                                  fashion_mnist_dir, TINY, train_order_seed=1)
        assert runs.is_complete(run)
        results[run_id] = _load(run)
    masks, initial, final = results[1]
    for name, ticket_mask in ticket_masks.items():
        np.testing.assert_array_equal(masks[name], ticket_mask)
        alive = ticket_mask == 1
        assert int(np.count_nonzero(initial[name])) == int(alive.sum())
        assert not final[name][~alive].any()
        assert not np.array_equal(initial[name], ticket_initial[name])
        if mode == "reuse":
            assert np.isin(initial[name][alive], ticket_initial[name][alive]).all()
        if mode == "reuse_sign":
            assert np.isin(np.abs(initial[name][alive]),
                           np.abs(ticket_initial[name][alive])).all()
            np.testing.assert_array_equal(np.sign(initial[name][alive]),
                                          np.sign(ticket_initial[name][alive]))
        np.testing.assert_array_equal(initial[name], results[2][1][name])  # same seed
        assert not np.array_equal(initial[name], results[3][1][name])  # other seed


def test_rearrange_run(trial, fashion_mnist_dir):
    masks_dir, initial_dir, _ = _ticket_dirs(trial)
    ticket_masks = save_restore.restore_network(masks_dir)
    ticket_initial = save_restore.restore_network(initial_dir)
    run = paths.run(trial, 2, "rearrange", 1)
    rearrange.rearrange(run, masks_dir, initial_dir, 21, fashion_mnist_dir, TINY)
    masks, initial, final = _load(run)
    for name, ticket_mask in ticket_masks.items():
        assert int(masks[name].sum()) == int(ticket_mask.sum())
        assert not np.array_equal(masks[name], ticket_mask)
        np.testing.assert_array_equal(np.sort(initial[name][masks[name] == 1]),
                                      np.sort(ticket_initial[name][ticket_mask == 1]))
        assert not final[name][masks[name] == 0].any()


def test_random_prune_run(trial, fashion_mnist_dir):
    masks_dir, ticket_initial_dir, level0_dir = _ticket_dirs(trial)
    ticket_masks = save_restore.restore_network(masks_dir)
    original = save_restore.restore_network(level0_dir)
    run = paths.run(trial, 2, "random_prune", 1)
    random_prune.random_prune(run, masks_dir, level0_dir, 31, fashion_mnist_dir, TINY)
    masks, initial, _ = _load(run)
    for name, ticket_mask in ticket_masks.items():
        assert int(masks[name].sum()) == int(ticket_mask.sum())
        assert not np.array_equal(masks[name], ticket_mask)
        np.testing.assert_array_equal(initial[name], original[name] * masks[name])
    with pytest.raises(ValueError, match="look pruned.*level-0"):
        random_prune.random_prune(paths.run(trial, 2, "random_prune", 2), masks_dir,
                                  ticket_initial_dir, 31, fashion_mnist_dir, TINY)


def test_rerunning_a_control_reads_it_back_and_other_settings_are_refused(
        trial, fashion_mnist_dir):
    masks_dir, initial_dir, _ = _ticket_dirs(trial, level=1)
    run = paths.run(trial, 1, "reuse", 1)
    reinitialize.reinitialize(run, masks_dir, initial_dir, "reuse", 5, fashion_mnist_dir, TINY)
    stamp = os.stat(paths.done(run)).st_mtime_ns
    reinitialize.reinitialize(run, masks_dir, initial_dir, "reuse", 5, fashion_mnist_dir, TINY)
    assert os.stat(paths.done(run)).st_mtime_ns == stamp
    with pytest.raises(ValueError, match="control_seed: saved 5, asked 6"):
        reinitialize.reinitialize(run, masks_dir, initial_dir, "reuse", 6,
                                  fashion_mnist_dir, TINY)
    with pytest.raises(ValueError, match="--presets"):
        reinitialize.reinitialize(paths.run(trial, 1, "reuse", 2), masks_dir, None, "reuse",
                                  5, fashion_mnist_dir, TINY)
