"""Saving networks atomically, standardize, and the on-disk layout."""

import os

import numpy as np
import pytest

from lottery_ticket.foundations import paths
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations import union


def test_network_round_trip(tmp_path):
    network = {"layer0": np.arange(6.0).reshape(2, 3), "layer1": np.ones(4, np.float32)}
    save_restore.save_network(str(tmp_path / "net"), network)
    restored = save_restore.restore_network(str(tmp_path / "net"))
    assert sorted(restored) == ["layer0", "layer1"]
    for name in network:
        np.testing.assert_array_equal(restored[name], network[name])
        assert restored[name].dtype == network[name].dtype


def test_standardize_accepts_dict_path_list_and_none(tmp_path):
    a = {"x": np.array([1.0, 0.0, 0.0])}
    b = {"x": np.array([0.0, 0.0, 1.0])}
    save_restore.save_network(str(tmp_path / "a"), a)
    assert save_restore.standardize(None) is None
    np.testing.assert_array_equal(save_restore.standardize(a)["x"], a["x"])
    np.testing.assert_array_equal(save_restore.standardize(str(tmp_path / "a"))["x"], a["x"])
    combined = save_restore.standardize([str(tmp_path / "a"), b], combine_fn=union.union)
    np.testing.assert_array_equal(combined["x"], [1, 0, 1])
    with pytest.raises(ValueError, match="combine_fn"):
        save_restore.standardize([a, b])
    with pytest.raises(FileNotFoundError, match="no saved network"):
        save_restore.standardize(str(tmp_path / "missing"))


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    save_restore.write_json(str(path), {"value": 1})

    class Boom(Exception):
        pass

    def explode(f):
        f.write(b"{half")
        raise Boom()

    with pytest.raises(Boom):
        save_restore._write_atomically(str(path), explode)
    assert save_restore.read_json(str(path)) == {"value": 1}
    assert os.listdir(tmp_path) == ["result.json"]


def test_layer_names_must_be_file_names(tmp_path):
    with pytest.raises(ValueError, match="file name"):
        save_restore.save_network(str(tmp_path), {"a/b": np.ones(2)})


def test_paths_follow_the_original_layout():
    trial = paths.trial("/exp", 3)
    assert trial == os.path.join("/exp", "trial3")
    run = paths.run(trial, 4, "reinit", 2)
    assert run == os.path.join("/exp", "trial3", "4", "reinit2")
    assert paths.split_run_name("reinit2") == ("reinit", "2")
    assert paths.split_run_name("lottery") == ("lottery", "")
    assert paths.masks(run) == os.path.join(run, "masks")
    with pytest.raises(ValueError, match="not end in a digit"):
        paths.run(trial, 0, "conv2")
    with pytest.raises(ValueError, match="run_id"):
        paths.run(trial, 0, "reinit", "a")
