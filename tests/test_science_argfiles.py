"""Argfile batches of the analyses of finished trials: instability and supermask."""

import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import synthetic_split
from lottery_ticket.experiments import instability, kinds, lottery, supermask
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.foundations import paths

RUNNER = "lottery_ticket.mnist_fc.runners.argfile_runner"


def _printed(main, argv, capsys):
    main(argv)
    return capsys.readouterr().out.strip().split("\n")


def test_the_instability_argfile_prints_one_line_per_trial_level_and_k(capsys):
    from lottery_ticket.mnist_fc.argfiles import instability_argfile
    lines = _printed(instability_argfile.main,
                     ["--trials=2", "--first_trial=3", "--experiment_root=/r", "--levels=0,4",
                      "--instability_iterations=0,100", "--interpolation_points=5",
                      "--extra=--threads=1"], capsys)
    assert lines == [f"--output_dir=/r/trial{t}/{level}/instability_k{k} "
                     "--interpolation_points=5 --threads=1"
                     for t in (3, 4) for level in (0, 4) for k in (0, 100)]
    # The data location only when given: the runner reads the trial's own otherwise.
    assert _printed(instability_argfile.main, ["--trials=1", "--experiment_root=/r",
                                               "--mnist_location=/data"], capsys) == [
        "--output_dir=/r/trial1/0/instability_k0 --mnist_location=/data"]
    for line in lines:  # each names one analysis the runner can place
        assert instability.place(line.split()[0].partition("=")[2])[0].startswith("/r/trial")
    with pytest.raises(SystemExit) as exit_:
        instability_argfile.main(["--instability_iterations=0,a"])
    assert exit_.value.code == 2
    assert "--instability_iterations='0,a': give whole numbers" in capsys.readouterr().err


def test_the_supermask_argfile_prints_one_line_per_trial(capsys):
    from lottery_ticket.cifar10_conv.argfiles import supermask_argfile as cifar_argfile
    from lottery_ticket.mnist_fc.argfiles import supermask_argfile
    assert _printed(supermask_argfile.main, ["--trials=2", "--experiment_root=/r"],
                    capsys) == ["--output_dir=/r/trial1/supermask",
                                "--output_dir=/r/trial2/supermask"]
    assert _printed(cifar_argfile.main, ["--trials=1", "--experiment_root=/c",
                                         "--data_location=/d"], capsys) == [
        "--output_dir=/c/trial1/supermask --data_location=/d"]
    with pytest.raises(SystemExit) as exit_:
        supermask_argfile.main(["--trials=0"])
    assert exit_.value.code == 2 and "--trials=0" in capsys.readouterr().err
    assert kinds.get("supermask").argfile == "supermask_argfile"
    assert kinds.get("instability").argfile == "instability_argfile"


def _write_idx(directory, name, array, magic):
    with gzip.open(os.path.join(directory, name), "wb") as f:
        f.write(struct.pack(">ii", magic, len(array)))
        if array.ndim == 3:
            f.write(struct.pack(">ii", *array.shape[1:]))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def idx_data(tmp_path_factory):
    """The synthetic examples as MNIST IDX files, so runner subprocesses can read them."""
    directory = str(tmp_path_factory.mktemp("idx"))
    for prefix, (x, y) in (("train", synthetic_split(400, 1)),
                           ("t10k", synthetic_split(200, 2))):
        _write_idx(directory, f"{prefix}-images-idx3-ubyte.gz",
                   np.round(x * 255).reshape(-1, 28, 28), 2051)
        _write_idx(directory, f"{prefix}-labels-idx1-ubyte.gz", y, 2049)
    return directory


def _run(*args):
    result = subprocess.run([sys.executable, "-m", RUNNER, *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_argfile_lines_run_through_the_argfile_runner(idx_data, tmp_path):
    config = ExperimentConfig().replace(
        data_location=idx_data, validation_size=0,
        layers=((32, "relu"), (16, "relu"), (10, None)), training_len=("iterations", 20),
        batch_size=20, test_interval=10, levels=1, learning_rate=0.1)
    root = tmp_path / "exp"
    trial = str(root / "trial1")
    lottery.run_trial(trial, config, seed=1, progress=False)
    flags = (f"--trials=1 --experiment_root={root} --levels=1 --instability_iterations=10 "
             "--interpolation_points=3 --extra=--threads=1")
    out = _run("--runner=instability", "--argfile=instability_argfile",
               f"--argfile_flags={flags}")
    assert "1 done, 0 skipped (already done), 0 failed, of 1 lines" in out
    where = instability.directory(trial, 1, 10)
    record = json.load(open(os.path.join(where, instability.RECORD)))
    assert (record["k"], record["level"], len(record["path"])) == (10, 1, 3)
    for copy, error in zip(record["copies"], record["endpoint_errors"]):
        accuracy = json.load(open(paths.metrics(copy)))["test"]["accuracy"][-1]
        assert error == pytest.approx(1.0 - accuracy, abs=1e-6)
    again = _run("--runner=instability", "--argfile=instability_argfile",
                 f"--argfile_flags={flags}")
    assert "0 done, 1 skipped (already done), 0 failed, of 1 lines" in again
    out = _run("--runner=supermask", "--argfile=supermask_argfile",
               f"--argfile_flags=--trials=1 --experiment_root={root}")
    assert "1 done, 0 skipped (already done), 0 failed, of 1 lines" in out
    saved = json.load(open(os.path.join(trial, supermask.RECORD)))
    assert [entry["level"] for entry in saved["levels"]] == [0, 1]
    assert "supermask accuracy" in open(os.path.join(root, "trial1", "supermask.log")).read()
