"""Every example on the guide pages (docs/**/*.md and README.md) works as written.

Each page's ```python blocks run in order in one namespace per page, in a fresh
working directory, with "data/mnist" and "data/fashion-mnist" replaced by the real
Fashion-MNIST folder and "results/lottery" by a small tree of finished runs; the pages'
assertions run with them, and the checks below assert what each page's examples must
leave behind (```py blocks are shown, not run: placeholders, CIFAR-10 data, or files
that tests/test_new_family.py compares with the ones it runs).
Every command line (`python -m lottery_ticket....`, continuation lines joined) names a
module that exists, and every flag it gives is one that module's real parser accepts;
every `python bench/...` command names a script and flags it defines. Every relative
link lands on a file of the repository (or a flag page the build generates), and no
page names a path outside the repository.
"""

import contextlib
import glob
import importlib
import io
import os
import re
import shlex
import types
from typing import Dict, List, Tuple

import pytest

from conftest import REPO
from test_analysis import write_run

from lottery_ticket.cli import flags as flags_lib


def guide_pages() -> List[str]:
    """README.md and every Markdown page of the site, relative to the repository."""
    pages = ["README.md"]
    for path in sorted(glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)):
        relative = os.path.relpath(path, REPO)
        # Build output and the flag pages the build generates are not guide pages.
        if not relative.startswith((os.path.join("docs", "_build"),
                                    os.path.join("docs", "reference", "flags"))):
            pages.append(relative)
    return pages


def read(page: str) -> str:
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def python_blocks(text: str) -> List[str]:
    """The ```python blocks of a page (```py blocks are shown, not run)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


PAGES = guide_pages()
EXAMPLE_PAGES = [page for page in PAGES if python_blocks(read(page))]
# Pages whose examples read the data train on it: slow (conftest's SLOW_FIXTURES marks
# every test using fashion_mnist_dir); the others run in the fast tier.
DATA_FOLDERS = ('"data/mnist"', '"data/fashion-mnist"')
TRAINING_PAGES = [page for page in EXAMPLE_PAGES
                  if any(folder in block for block in python_blocks(read(page))
                         for folder in DATA_FOLDERS)]
OTHER_PAGES = [page for page in EXAMPLE_PAGES if page not in TRAINING_PAGES]


def check_notebooks(namespace, tmp_path):
    assert os.path.isfile(tmp_path / "notebook_runs" / "level1" / "done.json")
    assert namespace["trial"][1].metrics["test"]["iteration"][:2] == [100, 200]


def check_populations(namespace, tmp_path):
    for member in range(3):  # one run directory per member
        assert os.path.isfile(tmp_path / "results" / "population" / str(member) / "done.json")
    assert len(namespace["results"]) == 3


def check_new_architecture(namespace, tmp_path):
    assert sorted(namespace["pruned_conv"].weights) == ["conv0", "conv1", "fc0", "fc1"]
    assert os.path.isfile(tmp_path / "tiny_runs" / "level1" / "done.json")


def check_analysis(namespace, tmp_path):
    assert namespace["summary"][0]["runs"] == 2 and namespace["problems"] == []
    assert os.path.isfile(tmp_path / "notebook_runs" / "early_stop.png")


def check_supermasks(namespace, tmp_path):
    # The analyses of a finished trial from a notebook: instability and supermasks.
    stability = namespace["stability"]
    assert (stability["level"], stability["k"], len(stability["path"])) == (1, 0, 5)
    assert os.path.isfile(tmp_path / "notebook_runs" / "analyses" / "trial1" / "1" /
                          "instability_k0" / "instability.json")
    assert [entry["level"] for entry in namespace["supermasks"]["levels"]] == [0, 1]
    assert namespace["supermasks"]["criterion"] == "movement"


def check_pruning_rule(namespace, tmp_path):
    from lottery_ticket.foundations import pruning
    by_magnitude = pruning.prune(namespace["lenet_percents"], namespace["dense_masks"],
                                 namespace["trained"])
    assert (namespace["sensitive"]["layer0"] != by_magnitude["layer0"]).any()


def check_keras_models(namespace, tmp_path):
    assert os.path.isfile(tmp_path / "notebook_runs" / "keras_ticket.keras")
    assert os.path.isfile(tmp_path / "notebook_runs" / "keras_trial" / "2" / "reinit1" /
                          "done.json")


def check_prune_at_init(namespace, tmp_path):
    assert sorted(namespace["runs"]) == [5]


def check_cifar10(namespace, tmp_path):
    # The Conv-2 ticket: the network's five layers, 10% of conv0's weights pruned.
    masks = namespace["masks"]
    assert sorted(masks) == ["conv0", "conv1", "fc0", "fc1", "output"]
    assert masks["conv0"].size - masks["conv0"].sum() == round(0.1 * masks["conv0"].size)
    assert os.path.isfile(tmp_path / "notebook_runs" / "conv2" / "done.json")


def check_pruning_concepts(namespace, tmp_path):
    assert set(namespace["unit_masks"]) == {"layer0", "layer1", "layer2"}


# What each page's examples must leave behind, besides their own assertions.
CHECKS = {
    os.path.join("docs", "howto", "notebooks.md"): check_notebooks,
    os.path.join("docs", "howto", "populations.md"): check_populations,
    os.path.join("docs", "howto", "new-architecture.md"): check_new_architecture,
    os.path.join("docs", "howto", "analysis.md"): check_analysis,
    os.path.join("docs", "howto", "supermasks.md"): check_supermasks,
    os.path.join("docs", "howto", "pruning-rule.md"): check_pruning_rule,
    os.path.join("docs", "howto", "keras-models.md"): check_keras_models,
    os.path.join("docs", "howto", "prune-at-init.md"): check_prune_at_init,
    os.path.join("docs", "howto", "cifar10.md"): check_cifar10,
    os.path.join("docs", "concepts", "pruning.md"): check_pruning_concepts,
}


def run_page(page: str, tmp_path, monkeypatch, data_dir=None) -> None:
    monkeypatch.chdir(tmp_path)
    tree = tmp_path / "tree"
    for trial in (1, 2):
        write_run(tree, trial, 0, "lottery")
    namespace: Dict[str, object] = {}
    for block in python_blocks(read(page)):
        if data_dir is not None:
            for folder in DATA_FOLDERS:
                block = block.replace(folder, repr(data_dir))
        block = block.replace('"results/lottery"', repr(str(tree)))
        exec(compile(block, page, "exec"), namespace)  # pylint: disable=exec-used
    if page in CHECKS:
        CHECKS[page](namespace, tmp_path)


def test_every_checked_page_has_examples():
    assert sorted(CHECKS) == sorted(page for page in CHECKS if page in EXAMPLE_PAGES)
    assert len(EXAMPLE_PAGES) >= len(CHECKS)


@pytest.mark.parametrize("page", TRAINING_PAGES)
def test_training_examples_run(page, fashion_mnist_dir, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch, data_dir=fashion_mnist_dir)


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_examples_without_data_run(page, tmp_path, monkeypatch):
    run_page(page, tmp_path, monkeypatch)


# ----------------------------------------------------------------------------------
# Command lines.

def command_lines(text: str) -> List[Tuple[str, List[str]]]:
    """(module, arguments) of every `python -m lottery_ticket.X ...` on a page.

    Continuation lines (a backslash at the end) are joined; a command ends at the end
    of its line, at an inline code span's closing backquote, or at `&&`, `|`, `>`, `;`.
    """
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    found = []
    for match in re.finditer(r"python -m (lottery_ticket\.[\w.]+)((?:(?!python -m )[^\n`])*)", joined):
        rest = re.split(r"\s(?:&&|\|\|?|>|;)\s?", match.group(2))[0]
        found.append((match.group(1), shlex.split(rest)))
    return found


def check_command(module_name: str, arguments: List[str], monkeypatch) -> None:
    """Raises AssertionError unless the module's real parser takes these flags."""
    module = importlib.import_module(module_name)
    command = getattr(module, "COMMAND", None)
    if isinstance(command, flags_lib.Command):
        if not arguments:
            return  # named in prose
        try:
            values, _ = command.parse(arguments)
        except flags_lib.UsageError as error:
            raise AssertionError(f"{module_name} {shlex.join(arguments)}: {error}") from error
        if module_name.endswith(".argfile_runner") and values.get("argfile_flags"):
            check_argfile_flags(module_name, values, monkeypatch)
        return
    if ".argfiles." in module_name:
        check_argfile(module_name, arguments)
        return
    if module_name == "lottery_ticket.experiments.export":
        # Its argparse parser, with the export itself left out.
        monkeypatch.setattr(module, "export_run", lambda *args, **kwargs: types.SimpleNamespace(
            count_params=lambda: 0))
        monkeypatch.setattr(module, "sparsity", lambda exported: 0.0)
        with contextlib.redirect_stdout(io.StringIO()):
            module.main(arguments)
        return
    raise AssertionError(f"{module_name} has no command whose flags this test knows how to "
                         "check: give it a flags.Command named COMMAND, or add it here.")


def check_argfile(module_name: str, arguments: List[str]) -> None:
    """The argfile module's own (absl) parser takes the flags: --help after them
    prints the help, with status 0, only when every flag before it parsed."""
    module = importlib.import_module(module_name)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with pytest.raises(SystemExit) as exited:
            module.main(list(arguments) + ["--help"])
    assert exited.value.code == 0, f"{module_name} {shlex.join(arguments)}: {err.getvalue()}"


def check_argfile_flags(runner_module: str, values, monkeypatch) -> None:
    """--argfile_flags of an argfile runner line whose --argfile names a family's
    argfile module by its short name."""
    argfile = values["argfile"]
    if "/" in argfile or "." in argfile or os.path.exists(argfile):
        return  # a file of lines
    family = runner_module.rsplit(".runners.", 1)[0]
    check_argfile(f"{family}.argfiles.{argfile}", shlex.split(values["argfile_flags"]))


# The scripts that made the site's figures run the same runners.
SCRIPTS = sorted(os.path.relpath(path, REPO)
                 for path in glob.glob(os.path.join(REPO, "docs", "figures", "*.sh")))


def script_text(path: str) -> str:
    """A script's text with every shell variable read as 1 (a number where a flag
    wants one, a path segment elsewhere)."""
    return re.sub(r"\$\{?\w+\}?", "1", read(path))


ALL_COMMANDS = ([(page, module, arguments) for page in PAGES
                 for module, arguments in command_lines(read(page))] +
                [(script, module, arguments) for script in SCRIPTS
                 for module, arguments in command_lines(script_text(script))])


def test_pages_show_command_lines():
    pages = {page for page, _, _ in ALL_COMMANDS}
    assert "README.md" in pages
    assert os.path.join("docs", "getting-started.md") in pages
    assert len(ALL_COMMANDS) >= 40


def test_every_figure_is_shown_and_its_script_is_checked():
    text = "".join(read(page) for page in PAGES)
    figures = glob.glob(os.path.join(REPO, "docs", "figures", "*.png"))
    assert figures
    for figure in figures:
        assert f"figures/{os.path.basename(figure)}" in text, f"{figure} is on no page"
    quickstart = os.path.join("docs", "figures", "make_quickstart_figure.sh")
    assert quickstart in SCRIPTS
    assert {module for page, module, _ in ALL_COMMANDS if page == quickstart} >= {
        "lottery_ticket.mnist_fc.runners.lottery_experiment",
        "lottery_ticket.analysis.report"}


def test_command_lines_are_split_as_a_shell_splits_them():
    text = ("    python -m lottery_ticket.mnist_fc.runners.argfile_runner --runner=x \\\n"
            '        --argfile_flags="--trials=5 \\\n        --levels=0,5" > out.args\n'
            "and `python -m lottery_ticket.analysis.report` in prose; "
            "python -m lottery_ticket.a.b --x=1 && python -m lottery_ticket.c --y")
    assert command_lines(text) == [
        ("lottery_ticket.mnist_fc.runners.argfile_runner",
         ["--runner=x", "--argfile_flags=--trials=5 --levels=0,5"]),
        ("lottery_ticket.analysis.report", []),
        ("lottery_ticket.a.b", ["--x=1"]),
        ("lottery_ticket.c", ["--y"])]


def test_a_wrong_flag_is_caught(monkeypatch):
    with pytest.raises(AssertionError, match="levelz"):
        check_command("lottery_ticket.mnist_fc.runners.lottery_experiment",
                      ["--output_dir=x", "--levelz=3"], monkeypatch)
    with pytest.raises(AssertionError, match="triels"):
        check_argfile("lottery_ticket.mnist_fc.argfiles.oneshot_argfile", ["--triels=2"])
    with pytest.raises(AssertionError, match="scorez"):
        check_command("lottery_ticket.mnist_fc.runners.argfile_runner",
                      ["--runner=prune_at_init", "--argfile=prune_at_init_argfile",
                       "--argfile_flags=--trials=2 --scorez=snip"], monkeypatch)


@pytest.mark.parametrize("page,module,arguments", ALL_COMMANDS,
                         ids=[f"{page}:{module.rsplit('.', 1)[-1]}:{index}"
                              for index, (page, module, _) in enumerate(ALL_COMMANDS)])
def test_command_lines_use_real_modules_and_flags(page, module, arguments, monkeypatch):
    from importlib.util import find_spec
    assert find_spec(module) is not None, f"{page}: no module {module}"
    check_command(module, arguments, monkeypatch)


# ----------------------------------------------------------------------------------
# Links and paths.

def link_targets(text: str) -> List[str]:
    """Every local target a page links to or shows: Markdown links and images, and the
    paths of MyST {image}, {include} and {literalinclude} directives."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    targets += re.findall(r"^```\{(?:image|include|literalinclude)\}\s+(\S+)", text, flags=re.M)
    return [target for target in targets
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


def generated_flag_pages() -> List[str]:
    """The pages docs/_ext/flag_reference.py writes into docs/reference/flags/ at every
    build (ignored by git, so not in a fresh checkout)."""
    import sys
    sys.path.insert(0, os.path.join(REPO, "docs", "_ext"))
    try:
        flag_reference = importlib.import_module("flag_reference")
    finally:
        sys.path.remove(os.path.join(REPO, "docs", "_ext"))
    return [os.path.join(REPO, "docs", "reference", "flags", name)
            for name in flag_reference.pages()]


def test_link_targets_are_found():
    text = ("[a](b.md#c) ![f](figures/x.png) [web](https://x.org) [here](#top)\n"
            "```{image} figures/y.png\n:alt: y\n```\n```{include} flags/_runners.md\n```\n")
    assert link_targets(text) == ["b.md#c", "figures/x.png", "figures/y.png",
                                  "flags/_runners.md"]


def test_every_relative_link_lands_on_a_file_of_the_repository():
    generated = set(generated_flag_pages())
    checked = 0
    for page in PAGES:
        if page.startswith(os.path.join("docs", "reference", "flags") + os.sep):
            continue  # generated, and checked by the -W build
        folder = os.path.dirname(os.path.join(REPO, page))
        for target in link_targets(read(page)):
            path = os.path.normpath(os.path.join(folder, target.split("#")[0]))
            assert path.startswith(REPO + os.sep), f"{page}: {target} is outside the repository"
            assert os.path.exists(path) or path in generated, f"{page}: {target} does not exist"
            checked += 1
    assert checked >= 200


def test_no_page_names_a_path_outside_the_repository():
    for page in PAGES:
        text = read(page)
        folder = os.path.dirname(os.path.join(REPO, page))
        # A relative path that climbs (`../x`, not `.../x`) must be a file or folder of the
        # repository, seen from the page: `../shared/data` on a page is a machine's layout.
        for climb in re.findall(r"(?<![.\w])(?:\.\./)+[\w.-]+", text):
            path = os.path.normpath(os.path.join(folder, climb))
            assert path.startswith(REPO + os.sep) and os.path.exists(path), (
                f"{page}: {climb} is not a path of the repository")
        assert not re.search(r"(?<![\w.~])/(work|home|root|Users|mnt|scratch)/", text), page


def bench_commands(text: str) -> List[Tuple[str, List[str]]]:
    """(script, flag names) of every `python bench/NAME.py ...` on a page; optional
    flags shown in brackets count too."""
    joined = re.sub(r"\s*\\\n\s*", " ", text)
    found = []
    for match in re.finditer(r"python (bench/[\w.]+\.py)((?:(?!python )[^\n`])*)", joined):
        found.append((match.group(1), re.findall(r"(?<![\w-])--(\w+)", match.group(2))))
    return found


def test_bench_commands_use_real_scripts_and_flags():
    commands = [(page, script, flags) for page in PAGES
                for script, flags in bench_commands(read(page))]
    assert len(commands) >= 10
    for page, script, flags in commands:
        path = os.path.join(REPO, script)
        assert os.path.isfile(path), f"{page}: no {script}"
        accepted = set(re.findall(r"add_argument\(\s*\"--(\w+)\"", read(script))) | {"help"}
        unknown = sorted(set(flags) - accepted)
        assert not unknown, f"{page}: {script} has no flags {unknown}"
    assert bench_commands("`python bench/x.py --a=1 [--b=2]` and python bench/y.py") == [
        ("bench/x.py", ["a", "b"]), ("bench/y.py", [])]


def test_every_image_of_the_site_lies_under_docs():
    # The build (and tests/test_docs_build.py's copy of docs/) reads only docs/.
    docs = os.path.join(REPO, "docs") + os.sep
    images = 0
    for page in PAGES:
        if not page.startswith(os.path.join("docs", "")):
            continue
        text = read(page)
        for target in (re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text) +
                       re.findall(r"^```\{image\}\s+(\S+)", text, flags=re.M)):
            path = os.path.normpath(os.path.join(REPO, os.path.dirname(page), target))
            assert path.startswith(docs), f"{page}: {target} is outside docs/"
            images += 1
    assert images >= 4


def shown_blocks(text: str) -> List[str]:
    """The ```py blocks of a page: shown, not run (placeholders, CIFAR-10 data)."""
    return re.findall(r"^```py\n(.*?)^```", text, flags=re.M | re.S)


SHOWN = [(page, block) for page in PAGES for block in shown_blocks(read(page))]


@pytest.mark.parametrize("page,block", SHOWN,
                         ids=[f"{page}:{k}" for k, (page, _) in enumerate(SHOWN)])
def test_shown_examples_compile_and_import_what_exists(page, block):
    """A block that is not run still parses, and every name it imports from this
    library exists, so a rename cannot leave it stale."""
    import ast
    tree = ast.parse(block, filename=page)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lottery_ticket"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    # A submodule imported by name (from lottery_ticket.x import y).
                    importlib.import_module(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lottery_ticket"):
                    importlib.import_module(alias.name)


def test_some_examples_are_shown_not_run():
    # The parametrized test above must have blocks to check (the pages show four kinds).
    assert len(SHOWN) >= 3
