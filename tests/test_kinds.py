"""The registry of experiment kinds: one registration reaches the reader, the
figures, the runners, the argfiles and the argfile runner's help."""

import contextlib
import io

import pytest

from test_analysis import write_run
from lottery_ticket.analysis import figures
from lottery_ticket.analysis import metrics
from lottery_ticket.analysis import reader
from lottery_ticket.cli import argfile_runner
from lottery_ticket.cli import argfiles
from lottery_ticket.cli import runners
from lottery_ticket.experiments import control_runs
from lottery_ticket.experiments import kinds
from lottery_ticket.mnist_fc import constants


def _grasp_argfile(family, argv=None):
    print(f"--output_dir={family.experiment_root}/grasp1 --seed=1")


GRASP = kinds.Kind(
    name="grasp", runner="grasp", run_names=("grasp",), argfile="grasp_argfile",
    command=lambda family: runners.train(family, "grasp"), argfile_main=_grasp_argfile,
    aliases={"grasp_old": "grasp"}, figure_order=0.5, labels={"grasp": "GraSP"},
    styles={"grasp": {"marker": "*", "linestyle": ":"}})


@pytest.fixture
def grasp():
    kinds.register(GRASP)
    try:
        yield GRASP
    finally:
        kinds.unregister(GRASP.name)


def _tree(root):
    write_run(root, 1, 1, "lottery")
    write_run(root, 1, 1, "reinit", "1")
    write_run(root, 1, 1, "grasp_old", "1")  # the new kind's older directory name
    write_run(root, 1, 1, "aardvark", "1")  # no kind: sorted by name after the kinds
    records, problems = reader.load_experiment(str(root))
    assert problems == []
    return records


def _legend(records):
    figure = figures.early_stopping_figure(
        metrics.summarize([metrics.run_metrics(r) for r in records]), "early_stop_test_accuracy")
    handles, labels = figure.axes[0].get_legend_handles_labels()
    return handles, [label.split(" (")[0] for label in labels]


def test_the_built_in_kinds_give_todays_names_and_order():
    assert kinds.line_order() == ("lottery", "reinit", "reuse", "reuse_sign", "rearrange",
                                  "random_prune") + tuple(
        f"prune_at_init_{score}{suffix}" for score in (
            "snip", "grasp", "synflow", "magnitude_at_init", "magnitude", "random")
        for suffix in ("", "_shuffle", "_reinit", "_invert"))
    assert control_runs.CONTROLS == ("reinit", "reuse", "reuse_sign", "rearrange",
                                     "random_prune")
    assert kinds.runner_names() == ["lottery_experiment", "train", "reinitialize",
                                    "rearrange", "random_prune", "oneshot",
                                    "prune_at_init", "instability", "supermask"]
    assert kinds.run_name("same_init") == "lottery"


def test_a_kind_registered_once_reaches_reader_and_figures(tmp_path, grasp):
    records = _tree(tmp_path)
    assert sorted(r["experiment_name"] for r in records) == [
        "aardvark", "grasp", "lottery", "reinit"]
    handles, labels = _legend(records)
    assert labels == ["lottery", "GraSP", "reinit", "aardvark"]
    assert handles[1].lines[0].get_marker() == "*"
    assert handles[1].lines[0].get_linestyle() == ":"


def test_without_the_registration_the_reader_and_figures_do_not_know_it(tmp_path):
    records = _tree(tmp_path)
    assert sorted(r["experiment_name"] for r in records) == [
        "aardvark", "grasp_old", "lottery", "reinit"]
    _, labels = _legend(records)
    assert labels == ["lottery", "reinit", "aardvark", "grasp_old"]


def test_a_kind_registered_once_reaches_the_runners_argfiles_and_help(grasp):
    family = constants.FAMILY
    assert "grasp" in argfile_runner.command(family).help()
    with pytest.raises(ValueError, match=r"runners \(lottery_experiment, .*, grasp;"):
        argfile_runner.check_runner("lottery_ticket.mnist_fc.something_else")
    command, _ = runners.entry_point(family, "grasp")
    assert command.help().startswith("usage: python -m lottery_ticket.mnist_fc.runners.grasp")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        argfiles.entry_point(family, "grasp_argfile")([])
    assert printed.getvalue() == f"--output_dir={family.experiment_root}/grasp1 --seed=1\n"


def test_names_a_kind_takes_must_be_free(grasp):
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(GRASP)
    with pytest.raises(ValueError, match="oneshot already belong.* kind 'oneshot'"):
        kinds.register(kinds.Kind(name="other", runner="oneshot"))
    with pytest.raises(ValueError, match="reinit already belong.* kind 'reinitialize'"):
        kinds.register(kinds.Kind(name="other", runner="other", run_names=("reinit",)))
    with pytest.raises(ValueError, match="unknown experiment kind 'grsp'. Did you mean 'grasp'"):
        kinds.get("grsp")
    with pytest.raises(ValueError, match="no experiment kind has a runner named 'nope'"):
        runners.entry_point(constants.FAMILY, "nope")
    with pytest.raises(ValueError, match="no experiment kind has an argfile named 'nope'"):
        argfiles.entry_point(constants.FAMILY, "nope")


def test_a_familys_downloader_is_declared_by_its_defaults():
    from lottery_ticket.cifar10_conv import constants as cifar  # pylint: disable=C0415
    command, _ = runners.entry_point(cifar.FAMILY, "download_data")
    text = command.help()
    assert text.startswith("usage: python -m lottery_ticket.cifar10_conv.download_data")
    assert f"[default: {cifar.DEFAULT['data_location']}]" in text
    assert "[default: cifar10]" in text


def test_a_family_offers_only_the_kinds_it_declares():
    family = constants.FAMILY.__class__(**dict(vars(constants.FAMILY), kinds=("lottery",)))
    runners.entry_point(family, "lottery_experiment")
    with pytest.raises(ValueError, match="offers the experiment kinds lottery, not 'oneshot'"):
        runners.entry_point(family, "oneshot")
    with pytest.raises(ValueError, match="not 'rearrange'"):
        argfiles.entry_point(family, "rearrange_argfile")


@pytest.mark.parametrize("package", ["mnist_fc", "cifar10_conv"])
def test_a_familys_modules_are_exactly_the_entry_points_its_family_declares(package):
    import importlib  # pylint: disable=C0415
    import pkgutil  # pylint: disable=C0415
    family = importlib.import_module(f"lottery_ticket.{package}.constants").FAMILY
    for subpackage, declared in (("runners", family.runner_modules()),
                                 ("argfiles", family.argfile_modules())):
        parent = importlib.import_module(f"lottery_ticket.{package}.{subpackage}")
        present = sorted(f"{parent.__name__}.{info.name}"
                         for info in pkgutil.iter_modules(parent.__path__))
        assert present == sorted(declared), subpackage
    for module in family.runner_modules():
        assert importlib.import_module(module).COMMAND.program == f"python -m {module}"
    for module in family.argfile_modules():
        assert callable(importlib.import_module(module).main)
