"""The README's quick start is what CI runs, and the README stays a short front page
whose links all land inside the repository."""

import os
import re

from conftest import REPO

README = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(REPO, ".ci", "run"), encoding="utf-8").read()
    command = 'python -m pip install -e ".[test]" && python -m pytest'
    assert f"    {command}\n" in README
    # CI runs the same two steps, with the Slurm test cluster started between them.
    install, test = command.split(" && ")
    assert f"\n{install}\n" in ci and ci.rstrip().endswith(f"\n{test}")
    assert ci.index(install) < ci.index("tests/cluster/start_slurm.sh") < ci.rindex(test)


def test_quick_start_commands_name_real_modules():
    from importlib.util import find_spec
    for module in re.findall(r"python -m (lottery_ticket[\w.]+)", README):
        assert find_spec(module) is not None, module


def test_the_quick_start_trains_a_trial_and_builds_the_site():
    assert ("    python -m pip install . && python -m lottery_ticket.mnist_fc.download_data "
            "--location=data/mnist && python -m lottery_ticket.mnist_fc.runners."
            "lottery_experiment --output_dir=results/quickstart/trial1 "
            "--mnist_location=data/mnist\n") in README
    assert ('    python -m pip install -e ".[docs]" && python -m sphinx -W -b html docs '
            "docs/_build/html\n") in README


def test_the_readme_is_a_short_front_page():
    assert len(README.splitlines()) <= 150


def test_every_link_lands_inside_the_repository():
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [target for target in targets if not re.match(r"https?://", target)]
    assert len(local) >= 20  # the table of what it can do links into docs/
    for target in local:
        path = os.path.normpath(os.path.join(REPO, target.split("#")[0]))
        assert path.startswith(REPO + os.sep), target
        assert os.path.exists(path), target
    assert not re.search(r"(?<![\w.])/(work|home|root|tmp)/", README)


def test_the_readme_shows_a_committed_figure():
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README)
    assert figures and all(os.path.isfile(os.path.join(REPO, path)) for path in figures)


def task_table(text: str) -> str:
    start = text.index("| task | guide |")
    return text[start:text.index("\n\n", start)]


def test_the_site_front_page_has_the_readme_task_table():
    # One table of tasks, on GitHub and on the site: every task one click from either.
    index = open(os.path.join(REPO, "docs", "index.md"), encoding="utf-8").read()
    assert task_table(index) == task_table(README).replace("](docs/", "](")
    assert len(task_table(README).splitlines()) >= 20
