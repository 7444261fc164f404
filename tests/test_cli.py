"""The command lines: generated flags, --help, the one-line `error:` contract, aliases,
control overrides, argfiles and the argfile runner.

Most tests call a runner's COMMAND in this process (fast); a few run `python -m`
in a subprocess to prove the entry points work as scripts. A bad command line
must be refused with exit status 2 and one `error:` line before any work: the
tests point --output_dir into tmp_path and check that nothing was written.
"""

import importlib
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from lottery_ticket.cli import flags as flags_lib
from lottery_ticket.cli import runners as runners_lib
from lottery_ticket.experiments.config import ExperimentConfig
from lottery_ticket.mnist_fc import constants

RUNNERS = ("lottery_experiment", "oneshot", "train", "reinitialize", "rearrange",
           "random_prune", "argfile_runner")
CONTROLS = ("reinitialize", "rearrange", "random_prune")
ARGFILES = ("lottery_experiment_argfile", "rearrange_argfile", "reinitialize_argfile",
            "random_prune_argfile")
CONFIG_FIELDS = tuple(ExperimentConfig.fields())


def runner(name):
    return importlib.import_module(f"lottery_ticket.mnist_fc.runners.{name}")


def argfile(name):
    return importlib.import_module(f"lottery_ticket.mnist_fc.argfiles.{name}")


def call(function, *args):
    """Exit status of function(*args): 0 when it returns, else its SystemExit code."""
    try:
        function(*args)
    except SystemExit as exit_:
        return 0 if exit_.code is None else exit_.code
    return 0


def run_in_process(command, argv, capsys):
    """(exit status, stdout, stderr) of COMMAND.run(argv)."""
    capsys.readouterr()
    code = call(command.run, argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error(code, err, *fragments):
    """Exit 2 and exactly one `error:` line holding every fragment; returns the line."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert code == 2, f"exit {code}: {err}"
    return lines[0]


def files_under(path):
    """Every file and directory below `path` (relative), sorted."""
    found = []
    for root, dirs, files in os.walk(path):
        found += [os.path.relpath(os.path.join(root, name), path) for name in dirs + files]
    return sorted(found)


def python_m(module, args, tmp_path, timeout=120):
    """(CompletedProcess, seconds) of `python -m module args`, with home defaults in tmp."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               LOTTERY_TICKET_EXPERIMENTS=str(tmp_path / "default_experiments"),
               LOTTERY_TICKET_MNIST=str(tmp_path / "default_mnist"))
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", module] + list(args), capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=tmp_path)
    return result, time.monotonic() - start


def flag_line(help_text, name):
    """The --help line that introduces --name."""
    rows = [row for row in help_text.splitlines() if row.split()[:1] == [f"--{name}"]]
    assert len(rows) == 1, f"--{name} introduced {len(rows)} times in:\n{help_text}"
    return rows[0]


# 1. --help ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", RUNNERS)
def test_runner_help_lists_every_flag_with_its_default(name, capsys):
    module = runner(name)
    capsys.readouterr()
    assert call(module.main, ["--help"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out.startswith(f"usage: python -m lottery_ticket.mnist_fc.runners.{name} ")
    for flag in module.COMMAND.flags:
        line = flag_line(out, flag.name)
        assert f"[default: {flag.describe_default()}]" in line, line
        for alias in flag.aliases:
            assert f"--{alias}" in line, line
    assert "--help" in out


def test_lottery_help_has_every_config_field_with_the_family_default(capsys):
    command = runner("lottery_experiment").COMMAND
    out = run_in_process(command, ["--help"], capsys)[1]
    assert {flag.name for flag in command.flags if flag.config} == set(CONFIG_FIELDS)
    for name in CONFIG_FIELDS:
        flag_line(out, name)
    assert "[default: 30]" in flag_line(out, "levels")
    assert "--iterations" in flag_line(out, "levels")
    assert "--mnist_location" in flag_line(out, "data_location")
    assert "[default: iterations:50000]" in flag_line(out, "training_len")
    assert "[default: 0.1]" in flag_line(out, "learning_rate")
    assert ("[default: {'layer0': 0.2, 'layer1': 0.2, 'layer2': 0.1}]"
            in flag_line(out, "prune_percents"))
    # Each default as --help shows it, given back as a flag, is the family default.
    for flag in command.flags:
        if flag.config:
            values, given = command.parse([f"--{flag.name}={flag.describe_default()}"])
            assert given == {flag.name}
            config = flags_lib.config_from(values, constants.DEFAULT, only=given)
            assert config[flag.name] == constants.DEFAULT[flag.name], flag.name


@pytest.mark.parametrize("name", ("train",) + CONTROLS)
def test_single_run_commands_take_every_field_but_the_trial_ones(name, capsys):
    command = runner(name).COMMAND
    config_flags = {flag.name for flag in command.flags if flag.config}
    assert config_flags == set(CONFIG_FIELDS) - set(runners_lib.TRIAL_ONLY)
    if name in CONTROLS:  # Controls train like their ticket.
        out = run_in_process(command, ["--help"], capsys)[1]
        for field in config_flags:
            assert "[default: the ticket's]" in flag_line(out, field)


def test_download_data_help(capsys):
    from lottery_ticket.mnist_fc import download_data
    code, out, err = run_in_process(download_data.COMMAND, ["--help"], capsys)
    assert code == 0 and "Traceback" not in err
    assert out.startswith("usage: python -m lottery_ticket.mnist_fc.download_data ")
    assert [flag.name for flag in download_data.COMMAND.flags] == [
        "location", "dataset", "base_url", "timeout"]
    for flag in download_data.COMMAND.flags:
        assert f"[default: {flag.describe_default()}]" in flag_line(out, flag.name)


@pytest.mark.parametrize("module, command", [
    ("lottery_ticket.mnist_fc.runners.lottery_experiment", "lottery_experiment"),
    ("lottery_ticket.mnist_fc.download_data", None),
])
def test_help_with_python_m(module, command, tmp_path):
    result, _ = python_m(module, ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    if command is None:
        from lottery_ticket.mnist_fc import download_data
        flags = download_data.COMMAND.flags
    else:
        flags = runner(command).COMMAND.flags
    for flag in flags:
        flag_line(result.stdout, flag.name)
    assert files_under(tmp_path) == []


# 2. Unknown flags -----------------------------------------------------------------------

def test_unknown_flag_is_refused_before_any_work(tmp_path):
    out_dir = tmp_path / "trial"
    result, seconds = python_m("lottery_ticket.mnist_fc.runners.lottery_experiment",
                               [f"--output_dir={out_dir}", "--iteration=3"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown flag --iteration; did you mean --iterations?")
    assert result.stdout == ""
    assert files_under(tmp_path) == []  # refused before any training or file


def test_unknown_flag_in_process_names_the_closest(tmp_path, capsys):
    command = runner("lottery_experiment").COMMAND
    code, out, err = run_in_process(command, [f"--output_dir={tmp_path / 'trial'}",
                                              "--learning_rat=0.1"], capsys)
    assert_one_error(code, err, "unknown flag --learning_rat; did you mean --learning_rate?")
    assert out == "" and files_under(tmp_path) == []


def test_argfile_runner_unknown_flag_names_workers(tmp_path):
    result, _ = python_m("lottery_ticket.mnist_fc.runners.argfile_runner",
                         ["--runner=lottery_experiment",
                          "--argfile=lottery_experiment_argfile", "--worker=2"], tmp_path)
    assert_one_error(result.returncode, result.stderr,
                     "unknown flag --worker; did you mean --workers?")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name", ("train",) + CONTROLS)
def test_trial_settings_are_unknown_to_single_runs(name, capsys):
    code, _, err = run_in_process(runner(name).COMMAND, ["--levels=3"], capsys)
    assert_one_error(code, err, "unknown flag --levels")


# 3. Aliases -----------------------------------------------------------------------------

def test_iterations_is_an_alias_of_levels():
    command = runner("lottery_experiment").COMMAND
    by_alias = command.parse(["--iterations=0"])
    by_name = command.parse(["--levels=0"])
    assert by_alias == by_name
    values, given = by_alias
    assert values["levels"] == 0 and given == {"levels"}
    assert "iterations" not in values


def test_levels_and_iterations_together_are_an_error(capsys):
    command = runner("lottery_experiment").COMMAND
    with pytest.raises(flags_lib.UsageError, match="--iterations"):
        command.parse(["--iterations=1", "--levels=1"])
    code, _, err = run_in_process(command, ["--levels=1", "--iterations=2"], capsys)
    assert_one_error(code, err, "--iterations=2", "--levels")


@pytest.mark.parametrize("name", ("lottery_experiment", "train") + CONTROLS)
def test_mnist_location_is_an_alias_of_data_location(name):
    command = runner(name).COMMAND
    required = [f"--{flag.name}=/x" for flag in command.flags
                if flag.default is flags_lib.REQUIRED]
    values, given = command.parse(required + ["--mnist_location=/some/dir"])
    assert values["data_location"] == "/some/dir"
    assert given - {"output_dir", "masks", "presets"} == {"data_location"}
    assert "mnist_location" not in values
    assert command.parse(required + ["--data_location=/some/dir"]) == (values, given)
    with pytest.raises(flags_lib.UsageError, match="data_location"):
        command.parse(required + ["--mnist_location=/a", "--data_location=/b"])


def test_parse_fills_defaults_and_reports_only_given_flags():
    command = runner("lottery_experiment").COMMAND
    values, given = command.parse(["--seed", "3", "--training_len=iterations:30"])
    assert given == {"seed", "training_len"}
    assert values["seed"] == 3
    assert values["levels"] == constants.DEFAULT["levels"]
    assert values["output_dir"] is None
    config = flags_lib.config_from(values, constants.DEFAULT)
    assert config["training_len"] == ("iterations", 30)


# 4. Bad values: one line, exit 2, before any work ---------------------------------------

BAD_VALUES = [
    (["--levels=abc"], ["levels", "'abc'", "whole number"]),
    (["--levels=-1"], ["levels"]),
    (["--threads=-1"], ["--threads=-1"]),
    (["--threads=abc"], ["--threads"]),
    (["--seed=1.5"], ["--seed"]),
    (["--learning_rate=fast"], ["learning_rate", "'fast'"]),
    (["--learning_rate=0"], ["learning_rate"]),
    (["--training_len=steps:5"], ["--training_len", "steps:5", "iterations:2000"]),
    (["--training_len=epochs:0"], ["--training_len"]),
    (["--flatten=maybe"], ["flatten"]),
    (["--layers=[]"], ["layers"]),
    (["--optimizer=adamw"], ["'adamw'", "adam"]),
    (["--dataset=cifar"], ["'cifar'"]),
    (["positional"], ["unexpected argument 'positional'"]),
    (["--levels", "3", "extra"], ["unexpected argument 'extra'"]),
    (["--levels"], ["--levels needs a value"]),
    (["--seed", "--levels=1"], ["--seed needs a value"]),
    (["--levels=1", "--levels=2"], ["--levels"]),
    (["--population=0"], ["--population=0"]),
    (["--population=3"], ["--population=3", "{seed}", "seeds 0 to 2"]),
    (["--xla=fast"], ["--xla", "auto, on or off"]),
    (["--sparse_below=2"], ["sparse_below"]),
]


@pytest.mark.parametrize("argv, fragments", BAD_VALUES,
                         ids=[" ".join(argv) for argv, _ in BAD_VALUES])
def test_bad_values_are_one_line_before_any_work(argv, fragments, tmp_path, capsys):
    command = runner("lottery_experiment").COMMAND
    # A missing data directory: if the check were missed, the run still fails fast.
    prefix = [f"--output_dir={tmp_path / 'trial'}",
              f"--mnist_location={tmp_path / 'no_data'}"]
    code, out, err = run_in_process(command, prefix + argv, capsys)
    assert_one_error(code, err, *fragments)
    assert out == ""
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name, argv, fragment", [
    ("train", ["--learning_rate=fast"], "learning_rate"),
    ("train", ["--training_len=steps:5"], "--training_len"),
    ("train", [], "--output_dir is required"),
    ("rearrange", ["--threads=-1"], "--threads=-1"),
    ("rearrange", ["--batch_size=0"], "batch_size"),
    ("reinitialize", ["--seed=x"], "--seed"),
    ("random_prune", ["--train_order_seed"], "--train_order_seed needs a value"),
])
def test_bad_values_on_other_runners(name, argv, fragment, tmp_path, capsys):
    own = {"train": [f"--output_dir={tmp_path / 'run'}"]}.get(name, [
        f"--output_dir={tmp_path / 'run'}", f"--masks={tmp_path / 'masks'}",
        f"--presets={tmp_path / 'presets'}"])
    if argv == []:
        own = []
    code, _, err = run_in_process(runner(name).COMMAND,
                                  own + [f"--mnist_location={tmp_path / 'no_data'}"] + argv,
                                  capsys)
    assert_one_error(code, err, fragment)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("value, fragment", [
    ("{}", "prune_percents {}"), ("{'layer0': 2}", "prune_percents['layer0']"),
    # True would read as 1.0 and empty layer0 at level 1 (the configuration once took it).
    ("{'layer0': True, 'layer1': 0.2, 'layer2': 0.1}",
     "prune_percents['layer0'] is True; it is a fraction in [0, 1): a bool is not a rate"),
    ("{'layer0': 1, 'layer1': 0.2, 'layer2': 0.1}",
     "prune_percents['layer0'] is 1; it is a fraction in [0, 1): a rate of 1 or more prunes "
     "every surviving weight, which empties the layer. Fix: give a fraction below 1"),
    ("{'layer0': 0.2, 'layer1': -0.2}", "prune_percents['layer1'] is -0.2"),
])
def test_prune_percents_type_errors_with_python_m(value, fragment, tmp_path):
    # In a subprocess: in this process TensorFlow is imported, which (see the xfail
    # below) turns off the check of prune_percents.
    result, seconds = python_m(
        "lottery_ticket.mnist_fc.runners.lottery_experiment",
        [f"--output_dir={tmp_path / 'trial'}", f"--prune_percents={value}"], tmp_path)
    assert_one_error(result.returncode, result.stderr, fragment)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("percents", [{}, {"layer0": 2}, "oops"])
def test_prune_percents_are_checked_after_tensorflow_is_imported(percents):
    import typing
    import tensorflow  # noqa: F401  (what every training process does)
    for index in range(300):  # The same pressure on typing's cache, deterministically.
        typing.Dict[str, typing.Literal[index]]  # noqa: B018
    with pytest.raises(ValueError, match="prune_percents"):
        constants.DEFAULT.replace(prune_percents=percents)


def test_negated_boolean_with_a_value_is_an_error():
    command = runner("lottery_experiment").COMMAND
    with pytest.raises(flags_lib.UsageError, match="noflatten"):
        command.parse(["--noflatten=True"])


def test_negated_boolean():
    values, given = runner("lottery_experiment").COMMAND.parse(["--noflatten"])
    assert values["flatten"] is False and given == {"flatten"}
    values, _ = runner("argfile_runner").COMMAND.parse(["--runner=a", "--argfile=b",
                                                        "--dry_run"])
    assert values["dry_run"] is True


def test_text_config_flags_keep_the_text_as_typed():
    command = runner("lottery_experiment").COMMAND
    values, _ = command.parse(["--mnist_location=2024"])
    assert values["data_location"] == "2024"
    config = flags_lib.config_from(values, constants.DEFAULT)
    assert config["data_location"] == "2024"


def test_bad_kernel_initializer_is_refused_before_any_work(tmp_path, capsys):
    command = runner("lottery_experiment").COMMAND
    code, _, err = run_in_process(command, [f"--output_dir={tmp_path / 'trial'}",
                                            f"--mnist_location={tmp_path / 'no_data'}",
                                            "--kernel_initializer=bogus"], capsys)
    assert_one_error(code, err, "kernel_initializer", "bogus")
    assert files_under(tmp_path) == []


# 5. Controls train like their ticket ----------------------------------------------------

@pytest.fixture(scope="module")
def ticket(tmp_path_factory, fashion_mnist_dir):
    """A real one-level trial with 20 iterations per level: its level-1 run."""
    from lottery_ticket.mnist_fc import lottery_experiment
    trial_dir = str(tmp_path_factory.mktemp("cli_ticket") / "trial1")
    lottery_experiment.run_experiment(
        trial_dir, fashion_mnist_dir,
        constants.DEFAULT.replace(training_len=("iterations", 20), test_interval=10,
                                  validate_interval=10, validation_size=1000),
        levels=1, seed=1)
    run = os.path.join(trial_dir, "1", "lottery")
    assert os.path.isfile(os.path.join(run, "done.json"))
    return run


def control_argv(ticket, output_dir, *extra):
    return [f"--output_dir={output_dir}", f"--masks={os.path.join(ticket, 'masks')}",
            f"--presets={os.path.join(ticket, 'initial')}", "--seed=3"] + list(extra)


def recorded_config(run_dir):
    with open(os.path.join(run_dir, "done.json"), encoding="utf-8") as f:
        done = json.load(f)
    return done["run_info"], ExperimentConfig.from_json(done["run_info"]["config"])


def test_control_trains_like_its_ticket(ticket, tmp_path, capsys):
    out_dir = tmp_path / "rearrange1"
    code, out, err = run_in_process(runner("rearrange").COMMAND,
                                    control_argv(ticket, out_dir), capsys)
    assert code == 0, err
    assert f"run directory: {out_dir}" in out
    info, config = recorded_config(out_dir)
    assert info["config"]["training"]["training_len"] == ["iterations", 20]
    assert config["training_len"] == ("iterations", 20)
    assert config["validation_size"] == 1000 and config["test_interval"] == 10
    assert info["control"] == "rearrange"


def test_control_refuses_a_setting_other_than_its_tickets(ticket, tmp_path, capsys):
    out_dir = tmp_path / "rearrange1"
    code, out, err = run_in_process(
        runner("rearrange").COMMAND,
        control_argv(ticket, out_dir, "--training_len=iterations:30"), capsys)
    assert_one_error(code, err, "--training_len", "('iterations', 20)",
                     "('iterations', 30)", "--override=training_len", ticket)
    assert out == ""
    assert not os.path.exists(out_dir / "done.json")
    assert files_under(tmp_path) == []


def test_control_override_trains_differently(ticket, tmp_path, capsys):
    out_dir = tmp_path / "rearrange1"
    code, _, err = run_in_process(
        runner("rearrange").COMMAND,
        control_argv(ticket, out_dir, "--training_len=iterations:30",
                     "--override=training_len"), capsys)
    assert code == 0, err
    info, config = recorded_config(out_dir)
    assert info["config"]["training"]["training_len"] == ["iterations", 30]
    assert config["learning_rate"] == constants.DEFAULT["learning_rate"]


def test_control_accepts_the_tickets_own_value_and_other_locations(ticket, tmp_path,
                                                                   capsys, fashion_mnist_dir):
    # The same value as the ticket's needs no override; where the data lives is not
    # part of a run's identity, so --mnist_location may differ.
    data = tmp_path / "data"
    os.symlink(fashion_mnist_dir, data)
    out_dir = tmp_path / "reinit1"
    code, _, err = run_in_process(
        runner("reinitialize").COMMAND,
        control_argv(ticket, out_dir, "--training_len=iterations:20",
                     f"--mnist_location={data}"), capsys)
    assert code == 0, err
    info, config = recorded_config(out_dir)
    assert config["training_len"] == ("iterations", 20)
    assert config["data_location"] == str(data)
    assert info["control"] == "reinit"


@pytest.mark.parametrize("override", ["nonsense", "training_len,nonsense"])
def test_override_of_an_unknown_setting_is_an_error(override, ticket, tmp_path, capsys):
    code, _, err = run_in_process(
        runner("rearrange").COMMAND,
        control_argv(ticket, tmp_path / "rearrange1", f"--override={override}"), capsys)
    assert_one_error(code, err, "--override", "'nonsense'")
    assert files_under(tmp_path) == []


def test_control_refusal_lists_every_conflict(ticket, tmp_path, capsys):
    level0 = os.path.join(os.path.dirname(os.path.dirname(ticket)), "0", "lottery")
    code, _, err = run_in_process(
        runner("random_prune").COMMAND,
        [f"--output_dir={tmp_path / 'random_prune1'}",
         f"--masks={os.path.join(ticket, 'masks')}",
         f"--presets={os.path.join(level0, 'initial')}",
         "--learning_rate=0.2", "--batch_size=30", "--override=batch_size"], capsys)
    line = assert_one_error(code, err, "--learning_rate", "--override=learning_rate")
    assert "--batch_size" not in line
    assert files_under(tmp_path) == []


# 6. Argfiles ----------------------------------------------------------------------------

def test_argfile_modules_import_together_and_run_twice(capsys):
    from absl import flags as absl_flags
    modules = [argfile(name) for name in ARGFILES]
    lottery = modules[0]
    lottery.main(["--trials=2", "--levels=1", "--experiment_root=/exp",
                  "--mnist_location=/data"])
    first = capsys.readouterr().out.splitlines()
    assert first == [
        f"--output_dir={os.path.join('/exp', 'trial1')} --seed=1 --levels=1 "
        "--mnist_location=/data --training_len=iterations:50000",
        f"--output_dir={os.path.join('/exp', 'trial2')} --seed=2 --levels=1 "
        "--mnist_location=/data --training_len=iterations:50000"]
    # A second call starts from the defaults, not from the first call's flags.
    lottery.main(["--trials=1", "--first_trial=3", "--experiment_root=/exp"])
    second = capsys.readouterr().out.splitlines()
    assert len(second) == 1
    assert "--levels=30" in second[0] and "--seed=3" in second[0]
    assert shlex.quote(f"--mnist_location={constants.DEFAULT['data_location']}") in second[0]
    for module in modules[1:]:
        module.main(["--trials=1", "--last_level=2", "--runs_per_level=2",
                     "--experiment_root=/exp"])
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 4, lines
        assert all("--mnist_location=" in line for line in lines)
    # The flags live on private FlagValues, not on absl's global FLAGS.
    assert "trials" not in absl_flags.FLAGS and "levels" not in absl_flags.FLAGS


@pytest.mark.parametrize("name", ARGFILES)
def test_unknown_argfile_flag_is_one_error_line(name, capsys):
    capsys.readouterr()
    assert call(argfile(name).main, ["--trial=2"]) == 2
    out, err = capsys.readouterr()
    assert_one_error(2, err, "trial")
    assert out == ""


@pytest.mark.parametrize("argv, fragment", [
    (["positional"], "unexpected argument 'positional'"),
    (["--first_level=3", "--last_level=1"], "first_level 3"),
    (["--mode=sometimes"], "mode"),
])
def test_bad_control_argfile_input(argv, fragment, capsys):
    capsys.readouterr()
    code = call(argfile("reinitialize_argfile").main, argv)
    out, err = capsys.readouterr()
    assert_one_error(code, err, fragment)
    assert out == ""


@pytest.mark.parametrize("name, run_name", [("rearrange_argfile", "rearrange"),
                                            ("random_prune_argfile", "random_prune"),
                                            ("reinitialize_argfile", "reinit")])
def test_control_argfile_lines_carry_training_len_only_when_given(name, run_name, capsys):
    module = argfile(name)
    base = ["--trials=1", "--last_level=1", "--runs_per_level=1",
            "--experiment_root=/exp"]
    module.main(base)
    (line,) = capsys.readouterr().out.splitlines()
    assert "--training_len" not in line
    assert f"--output_dir={os.path.join('/exp', 'trial1', '1', run_name + '1')}" in line
    assert "--seed=1001" in line and "--train_order_seed=1" in line
    module.main(base + ["--training_len=iterations:30"])
    (line,) = capsys.readouterr().out.splitlines()
    assert "--training_len=iterations:30" in line


def test_lottery_argfile_groups_trials_into_populations(capsys):
    module = argfile("lottery_experiment_argfile")
    module.main(["--trials=5", "--experiment_root=/exp", "--trials_per_process=2"])
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()]
    assert [line[:2] for line in lines] == [
        [f"--output_dir={os.path.join('/exp', 'trial{seed}')}", "--seed=1"],
        [f"--output_dir={os.path.join('/exp', 'trial{seed}')}", "--seed=3"],
        [f"--output_dir={os.path.join('/exp', 'trial5')}", "--seed=5"]]
    assert ["--population=2" in line for line in lines] == [True, True, False]
    capsys.readouterr()
    assert call(module.main, ["--trials=2", "--trials_per_process=0"]) == 2
    assert_one_error(2, capsys.readouterr().err, "--trials_per_process=0")


def test_argfile_help(capsys):
    assert call(argfile("lottery_experiment_argfile").main, ["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("trials", "first_trial", "experiment_root", "mnist_location",
                 "training_len", "levels", "extra"):
        assert f"--{name}" in out


def test_argfile_main_does_not_drop_the_first_flag(capsys):
    code = call(argfile("lottery_experiment_argfile").main,
                ["--trials=2", "--experiment_root=/exp"])
    out, err = capsys.readouterr()
    assert code == 2 or len(out.splitlines()) == 2, out


def test_argfile_refuses_a_bad_training_len(capsys):
    code = call(argfile("lottery_experiment_argfile").main,
                ["--trials=1", "--training_len=steps:5"])
    out, err = capsys.readouterr()
    assert_one_error(code, err, "training_len")
    assert out == ""


# 7. The argfile runner ------------------------------------------------------------------

def test_argfile_runner_missing_argfile(tmp_path, capsys):
    code, out, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=lottery_experiment", "--argfile=does_not_exist"], capsys)
    assert_one_error(code, err, "--argfile=does_not_exist",
                     "is neither a file nor an argfile module")
    assert out == ""


def test_argfile_runner_missing_runner(capsys):
    code, out, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=nonexistent", "--argfile=lottery_experiment_argfile"], capsys)
    assert_one_error(code, err, "'nonexistent'", "runner")
    assert out == ""


@pytest.mark.parametrize("argv, fragment", [
    (["--argfile=lottery_experiment_argfile"], "--runner is required"),
    (["--runner=train"], "--argfile is required"),
    (["--runner=train", "--argfile=lottery_experiment_argfile", "--workers=0"],
     "--workers=0"),
    (["--runner=train", "--argfile=lottery_experiment_argfile", "--workers=two"],
     "--workers"),
])
def test_argfile_runner_bad_flags(argv, fragment, capsys):
    code, _, err = run_in_process(runner("argfile_runner").COMMAND, argv, capsys)
    assert_one_error(code, err, fragment)


@pytest.mark.parametrize("name", [
    "mnist_fc.lottery_experiment_argfile", "lottery_experiment_argfile",
    "lottery_ticket.mnist_fc.argfiles.lottery_experiment_argfile"])
def test_argfile_runner_dry_run(name, tmp_path, capsys):
    root, data = tmp_path / "X", tmp_path / "Y"
    code, out, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=lottery_experiment", f"--argfile={name}", "--dry_run",
         f"--argfile_flags=--trials=1 --levels=0 --experiment_root={root} "
         f"--mnist_location={data}"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    assert out.splitlines() == [
        "[to run] python -m lottery_ticket.mnist_fc.runners.lottery_experiment "
        + shlex.join([f"--output_dir={root / 'trial1'}", "--seed=1", "--levels=0",
                      f"--mnist_location={data}", "--training_len=iterations:50000"])]
    assert files_under(tmp_path) == []


def test_argfile_runner_dry_run_from_a_text_file(tmp_path, capsys):
    lines = tmp_path / "lines.args"
    lines.write_text(f"# two runs\n--output_dir={tmp_path / 'a'} --seed=1\n"
                     f"--output_dir={tmp_path / 'b'} --seed=2\n")
    code, out, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=mnist_fc.train", f"--argfile={lines}", "--dry_run"], capsys)
    assert code == 0, err
    train = "[to run] python -m lottery_ticket.mnist_fc.runners.train"
    assert out.splitlines() == [f"{train} --output_dir={tmp_path / 'a'} --seed=1",
                                f"{train} --output_dir={tmp_path / 'b'} --seed=2"]
    assert files_under(tmp_path) == ["lines.args"]


def test_argfile_runner_bad_argfile_flags_exit_2(capsys):
    code, out, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=lottery_experiment", "--argfile=lottery_experiment_argfile",
         "--argfile_flags=--bogus=1"], capsys)
    assert code == 2 and "Traceback" not in err and out == ""
    assert err.startswith("error: ") and "bogus" in err


def test_argfile_runner_bad_argfile_flags_is_one_line(capsys):
    code, _, err = run_in_process(
        runner("argfile_runner").COMMAND,
        ["--runner=lottery_experiment", "--argfile=lottery_experiment_argfile",
         "--argfile_flags=--bogus=1"], capsys)
    assert_one_error(code, err, "lottery_experiment_argfile", "bogus")


# 8. The library does not import the command line ----------------------------------------

def _imported_modules(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _is_cli(name):
    return (name == "lottery_ticket.cli" or name.startswith("lottery_ticket.cli.")
            or name.split(".")[0] in ("fire", "absl", "subprocess"))


LIBRARY_IMPORTS = """
import importlib, json, pkgutil, sys
import numpy, tensorflow  # TensorFlow itself loads absl and subprocess.
before = set(sys.modules)
import lottery_ticket.foundations, lottery_ticket.experiments, lottery_ticket.datasets
for package in (lottery_ticket.foundations, lottery_ticket.experiments,
                lottery_ticket.datasets):
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(package.__name__ + "." + info.name)
print(json.dumps({"all": sorted(sys.modules), "new": sorted(set(sys.modules) - before)}))
"""


def test_library_does_not_import_the_command_line():
    modules = _imported_modules(LIBRARY_IMPORTS)
    assert "lottery_ticket.experiments.control_runs" in modules["all"]
    assert "lottery_ticket.datasets.download" in modules["all"]
    assert [name for name in modules["all"]
            if name.startswith("lottery_ticket.cli") or name.split(".")[0] == "fire"] == []
    assert [name for name in modules["new"] if _is_cli(name)] == []


def test_configuration_imports_neither_tensorflow_nor_the_command_line():
    modules = _imported_modules(
        "import json, sys\n"
        "import lottery_ticket.experiments.config, lottery_ticket.experiments.family\n"
        "import lottery_ticket.foundations.paths, lottery_ticket.foundations.runs\n"
        "import lottery_ticket.foundations.save_restore, lottery_ticket.foundations.controls\n"
        "import lottery_ticket.datasets.registry, lottery_ticket.datasets.download\n"
        "print(json.dumps({'all': sorted(sys.modules)}))")
    assert [name for name in modules["all"] if _is_cli(name)] == []
    assert "tensorflow" not in modules["all"]
