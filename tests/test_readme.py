"""The README's quick start and Python examples run as written."""

import os
import re

import pytest

from conftest import REPO
from test_analysis import write_run

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


@pytest.mark.slow
def test_python_examples_run(fashion_mnist_dir, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    tree = tmp_path / "tree"
    for trial in (1, 2):
        write_run(tree, trial, 0, "lottery")
    for block in blocks:
        block = block.replace('"data/mnist"', repr(fashion_mnist_dir))
        block = block.replace('"results/lottery"', repr(str(tree)))
        exec(compile(block, "README.md", "exec"), namespace)
    assert os.path.isfile(tmp_path / "notebook_runs" / "level1" / "done.json")
    for member in range(3):  # the population example: one run directory per member
        assert os.path.isfile(tmp_path / "results" / "population" / str(member) / "done.json")
    assert sorted(namespace["pruned_conv"].weights) == ["conv0", "conv1", "fc0", "fc1"]
    assert namespace["summary"][0]["runs"] == 2 and namespace["problems"] == []
    # The analyses of a finished trial from a notebook: instability and supermasks.
    stability = namespace["stability"]
    assert (stability["level"], stability["k"], len(stability["path"])) == (1, 0, 5)
    assert os.path.isfile(tmp_path / "notebook_runs" / "analyses" / "trial1" / "1" /
                          "instability_k0" / "instability.json")
    assert [entry["level"] for entry in namespace["supermasks"]["levels"]] == [0, 1]
    assert namespace["supermasks"]["criterion"] == "movement"
