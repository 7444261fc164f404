"""The cifar10_conv family: per-model defaults, runners, argfiles, a real short run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cifar10_conv.argfiles import lottery_experiment_argfile
from lottery_ticket.cifar10_conv.runners import lottery_experiment, train
from lottery_ticket.experiments import lottery, single_run
from lottery_ticket.mnist_fc import constants as mnist_constants
from lottery_ticket.mnist_fc.runners import lottery_experiment as mnist_lottery

from conftest import REPO


def test_paper_defaults_per_model():
    expected = {"conv2": (2e-4, 20000, 0.1), "conv4": (3e-4, 25000, 0.1),
                "conv6": (3e-4, 30000, 0.15)}
    for model, (rate, iterations, conv_rate) in expected.items():
        config = constants.CONFIGS[model]
        assert config["model"] == model and config["layers"] == ()
        assert config["optimizer"] == "adam" and config["learning_rate"] == rate
        assert config["training_len"] == ("iterations", iterations)
        assert config["batch_size"] == 60 and config["validation_size"] == 5000
        assert config["dataset"] == "cifar10" and config["flatten"] is False
        assert config["dropout"] == 0.0
        convs = {name: p for name, p in config["prune_percents"].items()
                 if name.startswith("conv")}
        assert len(convs) == int(model[-1]) and set(convs.values()) == {conv_rate}
        assert (config["prune_percents"]["fc0"], config["prune_percents"]["fc1"],
                config["prune_percents"]["output"]) == (0.2, 0.2, 0.1)
    assert constants.DEFAULT == constants.CONFIGS["conv2"]


@pytest.fixture
def captured(monkeypatch):
    """Replaces training by recording the configuration the runner built."""
    seen = {}

    def run_trial(output_dir, config, seed, presets=None, experiment_name="lottery"):
        seen["config"] = config
        return {}

    def train_one(output_dir, config, **kwargs):
        seen["config"] = config

    monkeypatch.setattr(lottery, "run_trial", run_trial)
    monkeypatch.setattr(single_run, "train", train_one)
    return seen


def test_model_flag_switches_the_defaults_unless_given(captured, tmp_path):
    out = f"--output_dir={tmp_path}"
    lottery_experiment.main([out, "--model=conv6"])
    config = captured["config"]
    assert config == constants.CONFIGS["conv6"]
    lottery_experiment.main([out, "--model=conv4", "--learning_rate=0.001",
                             "--training_len=iterations:500", "--dropout=0.5"])
    config = captured["config"]
    assert (config["model"], config["learning_rate"], config["training_len"],
            config["dropout"]) == ("conv4", 0.001, ("iterations", 500), 0.5)
    assert config["prune_percents"] == constants.CONFIGS["conv4"]["prune_percents"]
    # Without --model: Conv-2's.
    lottery_experiment.main([out])
    assert captured["config"] == constants.CONFIGS["conv2"]
    train.main([out, "--model=conv4", "--dataset=fashion_mnist", "--data_location=/data"])
    config = captured["config"]
    assert (config["model"], config["learning_rate"], config["dataset"],
            config["data_location"]) == ("conv4", 3e-4, "fashion_mnist", "/data")


def test_other_families_build_the_same_configuration_as_before(captured, tmp_path):
    mnist_lottery.main([f"--output_dir={tmp_path}", "--mnist_location=/m",
                        "--learning_rate=0.05"])
    assert captured["config"] == mnist_constants.DEFAULT.replace(data_location="/m",
                                                                 learning_rate=0.05)


def test_bad_model_settings_are_one_error_line(tmp_path, capsys):
    for argv, message in (
            (["--model=conv3"], "conv3"),
            (["--dropout=1.5"], "dropout is 1.5"),
            (["--model=fc", "--dropout=0.5", "--layers=[(10, None)]",
              "--prune_percents={'layer0': 0.1}"], "the fc model has no dropout")):
        with pytest.raises(SystemExit) as exit_info:
            lottery_experiment.main([f"--output_dir={tmp_path / 'x'}",
                                     "--data_location=/nowhere"] + argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert error.startswith("error:") and message in error, error


def test_help_lists_the_model_and_dropout_flags(capsys):
    lottery_experiment.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--model", "--dropout", "--dataset", "--data_location", "--levels"):
        assert f"  {flag}" in text
    # Where --model changes a default, --help gives each model's.
    assert "--learning_rate  [default: conv2: 0.0002; conv4: 0.0003; conv6: 0.0003]" in text
    assert ("--training_len  [default: conv2: iterations:20000; conv4: iterations:25000; "
            "conv6: iterations:30000]") in text
    assert "--batch_size  [default: 60]" in text


def test_lottery_argfile_takes_the_models_length_and_adds_the_model(capsys):
    lottery_experiment_argfile.main(["--model=conv4", "--trials=2", "--experiment_root=/r",
                                     "--data_location=/d"])
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == ("--output_dir=/r/trial1 --seed=1 --levels=20 --data_location=/d "
                        "--training_len=iterations:25000 --model=conv4")
    assert lines[1].startswith("--output_dir=/r/trial2 --seed=2 ")
    lottery_experiment_argfile.main(["--trials=1", "--experiment_root=/r",
                                     "--data_location=/d", "--model", "conv6",
                                     "--extra=--dropout=0.5"])
    assert capsys.readouterr().out.strip().endswith(
        "--training_len=iterations:30000 --dropout=0.5 --model=conv6")
    with pytest.raises(SystemExit) as exit_info:
        lottery_experiment_argfile.main(["--model=conv5"])
    assert exit_info.value.code == 2
    assert "conv2, conv4, conv6" in capsys.readouterr().err


def test_every_entry_point_exists():
    from importlib.util import find_spec
    for module in ("runners.lottery_experiment", "runners.train", "runners.reinitialize",
                   "runners.rearrange", "runners.random_prune", "runners.argfile_runner",
                   "argfiles.lottery_experiment_argfile", "argfiles.reinitialize_argfile",
                   "argfiles.rearrange_argfile", "argfiles.random_prune_argfile",
                   "download_data"):
        assert find_spec(f"lottery_ticket.cifar10_conv.{module}") is not None, module


@pytest.mark.slow
def test_two_level_conv2_lottery_run_on_fashion_mnist(fashion_mnist_dir, tmp_path):
    """A real (short) run from the shell: level 0, pruning, level 1, then a control."""
    trial = tmp_path / "trial1"
    command = [sys.executable, "-m", "lottery_ticket.cifar10_conv.runners.lottery_experiment",
               f"--output_dir={trial}", "--dataset=fashion_mnist",
               f"--data_location={fashion_mnist_dir}", "--levels=1",
               "--training_len=iterations:30", "--test_interval=30", "--validate_interval=0",
               "--validation_size=0", "--threads=2"]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(REPO))
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    level0 = json.loads((trial / "0" / "lottery" / "done.json").read_text())
    assert level0["run_info"]["config"]["model"]["model"] == "conv2"
    assert level0["run_info"]["config"]["training"]["learning_rate"] == 2e-4
    assert level0["final"]["test"]["accuracy"] > 0.5  # 30 Adam steps on Fashion-MNIST
    masks = {name: np.load(trial / "1" / "lottery" / "masks" / f"{name}.npy")
             for name in ("conv0", "conv1", "fc0", "fc1", "output")}
    sizes = {"conv0": 576, "conv1": 36864, "fc0": 14 * 14 * 64 * 256, "fc1": 65536,
             "output": 2560}
    rates = constants.CONFIGS["conv2"]["prune_percents"]
    for name, mask in masks.items():
        assert mask.size == sizes[name]
        assert int(mask.sum()) == sizes[name] - int(np.floor(rates[name] * sizes[name] + 0.5))
    final = np.load(trial / "1" / "lottery" / "final" / "fc0.npy")
    assert not final[masks["fc0"] == 0].any()


@pytest.mark.parametrize("runner", ["lottery_experiment", "oneshot"])
def test_trial_runners_start_from_the_chosen_models_defaults(runner, monkeypatch, tmp_path):
    """A one-shot line of a Conv-4 trial must be the Conv-4 trial's configuration."""
    import importlib
    from lottery_ticket.experiments import oneshot
    seen = {}

    def capture(trial_dir, config, *args, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(lottery, "run_trial", capture)
    monkeypatch.setattr(oneshot, "run_oneshot", capture)
    module = importlib.import_module(f"lottery_ticket.cifar10_conv.runners.{runner}")
    output = tmp_path / "trial1" / ("3/oneshot" if runner == "oneshot" else "")
    with pytest.raises(SystemExit):
        module.main([f"--output_dir={output}", "--model=conv4",
                     f"--data_location={tmp_path}", "--learning_rate=0.001"])
    config = seen["config"]
    assert config["model"] == "conv4" and config["learning_rate"] == 0.001
    assert config["training_len"] == ("iterations", 25000)
    assert config["prune_percents"] == constants.CONFIGS["conv4"]["prune_percents"]
