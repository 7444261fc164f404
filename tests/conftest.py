"""Shared fixtures: real data locations, a local mirror, small synthetic datasets."""

import contextlib
import fnmatch
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Hundreds of short runs of small networks: XLA's compile time (about a second per
# new program) would double the suite. The tests of XLA, of the sparse layers and of
# 'auto' itself ask for it explicitly or clear this (fixture `xla_auto`).
os.environ.setdefault("LOTTERY_TICKET_XLA_AUTO", "off")
# The runners train fully-connected networks on one thread, which turns the overlapped
# evaluation on for the rest of that process: a test of trace counts or of done.json's
# keys would then depend on which test ran before it in the same worker. The tests of
# the overlap ask for it ("on") or clear this (tests/test_overlap.py).
os.environ.setdefault("LOTTERY_TICKET_OVERLAP_AUTO", "off")

import numpy as np
import pytest

from lottery_ticket.foundations.dataset_base import DatasetBase

import real_data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the real data is when LOTTERY_TICKET_TEST_DATA (.ci/run sets it) is not set.
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def _data_dir(name: str) -> str:
    # Missing here, real_data fetches it into a cache (or skips, offline); session
    # fixtures keep the path, or the skip, so that happens once a session.
    return real_data.data_dir(name, DEFAULT_DATA)


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> str:
    """The full Fashion-MNIST (same files and shapes as MNIST)."""
    return _data_dir("fashion-mnist")


@pytest.fixture(scope="session")
def mnist_test_dir() -> str:
    """The official MNIST test files and training labels."""
    return _data_dir("mnist-test")


def synthetic_split(count: int, seed: int, features: int = 784, classes: int = 10):
    """Examples whose class is a fixed linear function of the input."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(1234).normal(size=(features, classes))
    x = rng.random((count, features), dtype=np.float32)
    y = np.argmax((x - 0.5) @ teacher, axis=1).astype(np.int32)
    return x, y


def synthetic_dataset(train_order_seed: int = 0, validate: bool = True,
                      batch_size: int = 20) -> DatasetBase:
    """A small learnable dataset of 784-feature examples."""
    return DatasetBase(synthetic_split(400, 1), batch_size, synthetic_split(200, 2),
                       validate=synthetic_split(100, 3) if validate else None,
                       train_order_seed=train_order_seed)


def _registered_synthetic(location, *, flatten=True, validation_size=0, batch_size=20,
                          train_order_seed=0) -> DatasetBase:
    return DatasetBase(synthetic_split(400, 1), batch_size, synthetic_split(200, 2),
                       validate=synthetic_split(100, 3) if validation_size else None,
                       train_order_seed=train_order_seed)


def register_synthetic_dataset(name: str = "synthetic_test") -> str:
    """Registers the synthetic data as a data set a configuration can name (its
    location is not read; validation_size > 0 gives the 100 validation examples)."""
    from lottery_ticket.datasets import registry as dataset_registry
    dataset_registry.DATASETS.register(
        name, dataset_registry.DatasetSpec(_registered_synthetic), replace=True)
    return name


def interrupting(train, run_suffix: str, at_iteration: int = 0):
    """trainer.train, except that a run whose directory ends in `run_suffix` (e.g.
    os.path.join("1", "lottery")) raises KeyboardInterrupt once it reaches
    `at_iteration`, as Ctrl-C would."""
    def interrupted(dataset, model, optimizer_fn, training_len, output_dir, **params):
        if output_dir.endswith(run_suffix):
            def stop(iteration, total, latest):
                if iteration >= at_iteration:
                    raise KeyboardInterrupt()
            params["progress"] = stop
        return train(dataset, model, optimizer_fn, training_len, output_dir, **params)
    return interrupted


@pytest.fixture
def small_dataset() -> DatasetBase:
    return synthetic_dataset()


# The fast tier, `pytest -m "not slow"` (under 3 minutes): besides the tests marked
# slow in their files, these are marked here, so that the tiers are chosen in one
# place. Each entry says why it is slow.
SLOW_MODULES = {
    "test_notebook.py": "starts Jupyter kernels and runs the quickstart notebook",
    "test_batch_ray.py": "starts Ray clusters (seconds each) and kills their drivers",
    "test_batch_slurm.py": "a real Slurm cluster and submitit's executor, with time limits",
    "test_speed_paths.py": "compiles with XLA (about a second per program) and trains "
                           "dense and sparse twins to compare them",
    "test_docs_build.py": "builds the documentation site with Sphinx, twice (each build "
                          "imports TensorFlow for the flag pages and the API pages)",
}
# Fixtures that mean real training: the runners as subprocesses (TensorFlow's import
# each time) on the real Fashion-MNIST.
SLOW_FIXTURES = {
    "fashion_mnist_dir": "trains on the real Fashion-MNIST, mostly through the runners "
                         "as subprocesses",
}
# Other tests taking seconds each: "module::test" or "module::test[parameters]",
# fnmatch patterns for the test's name and, apart, for its parameters' id.
_DAMAGED = "test_report_faults.py::test_a_damaged_run_is_a_problem_and_the_rest_is_analysed"
_DAMAGE_DRAWN_TWICE = ("each damage kind draws every figure (about 2 s); the fast tier "
                       "keeps one kind of each file's damage, on a lottery run")
SLOW_TESTS = {
    "test_experiment.py::test_interrupted_experiment_resumes_where_it_stopped":
        "trains a trial, interrupts it and trains it again",
    "test_cli.py::test_library_does_not_import_the_command_line":
        "imports every module in a fresh interpreter",
    "test_new_family.py::test_help_lists_every_configuration_field":
        "runs a family's --help in a fresh interpreter (TensorFlow's import)",
    f"{_DAMAGED}[*-reinit]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[non_numeric_*]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[metrics_not_a_list-*]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[truncated_initial-*]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[done_is_a_list-*]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[run_info_not_an_object-*]": _DAMAGE_DRAWN_TWICE,
    f"{_DAMAGED}[mask_counts_[!s]*]": _DAMAGE_DRAWN_TWICE,
}


def _matches(node: str, pattern: str) -> bool:
    """Whether a node id ('module::test[parameters]') matches a SLOW_TESTS pattern."""
    name, _, parameters = node.partition("[")
    want_name, _, want_parameters = pattern.partition("[")
    if not fnmatch.fnmatchcase(name, want_name):
        return False
    return not want_parameters or fnmatch.fnmatchcase(parameters[:-1], want_parameters[:-1])


def _slow_reason(item) -> Optional[str]:
    module = os.path.basename(str(item.fspath))
    if module in SLOW_MODULES:
        return SLOW_MODULES[module]
    for fixture in SLOW_FIXTURES:
        if fixture in getattr(item, "fixturenames", ()):
            return SLOW_FIXTURES[fixture]
    node = item.nodeid.split("/")[-1]
    return next((why for pattern, why in SLOW_TESTS.items() if _matches(node, pattern)),
                None)


def pytest_collection_modifyitems(config, items):
    """Marks the tests of SLOW_MODULES, SLOW_FIXTURES and SLOW_TESTS slow, and keeps
    each test file on one pytest-xdist worker (`--dist loadgroup`): a file's tests share
    module fixtures and, for the Ray and Slurm files, one cluster at a time."""
    for item in items:
        if _slow_reason(item) is not None:
            item.add_marker(pytest.mark.slow)
        item.add_marker(pytest.mark.xdist_group(os.path.basename(str(item.fspath))))


LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
SMALL_FC = {"layers": [(32, "relu"), (16, "relu"), (10, None)]}


@contextlib.contextmanager
def serving(directory):
    """Serves `directory` over HTTP on 127.0.0.1 (an ephemeral port) while open.

    Yields its base URL (ending in '/').
    """
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def mnist_mirror(mnist_test_dir, tmp_path):
    """Serves a copy of the MNIST test files on 127.0.0.1 (an ephemeral port).

    Yields (base URL, the served directory); the training images are missing,
    as they are here.
    """
    served = tmp_path / "served"
    shutil.copytree(mnist_test_dir, served)
    with serving(served) as url:
        yield url, served


def checksums(directory) -> dict:
    """relative path -> MD5 of every file under `directory`."""
    found = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = hashlib.md5(f.read()).hexdigest()
    return found


@pytest.fixture
def xla_auto(monkeypatch):
    """--xla=auto as it is outside the test suite (see LOTTERY_TICKET_XLA_AUTO above)."""
    monkeypatch.delenv("LOTTERY_TICKET_XLA_AUTO", raising=False)


def _mount(*arguments) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *arguments], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB file system (tmpfs), for a disk that fills up; unmounted after.

    Yields its path. Skips where mounting is not allowed (it needs root).
    """
    where = tmp_path / "small_disk"
    where.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    if mounted.returncode:
        pytest.skip("a full disk is tested on a small tmpfs, and mounting one failed "
                    f"(it needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def read_only(tmp_path):
    """read_only(directory) remounts `directory` read-only in place (a read-only bind
    mount of itself) and returns it; unmounted after. Skips where mounting is not
    allowed (it needs root)."""
    mounted_here = []

    def make(directory) -> str:
        directory = str(directory)
        bound = _mount("--bind", directory, directory)
        if bound.returncode:
            pytest.skip("a read-only tree is tested on a read-only bind mount, and making "
                        f"one failed (it needs root): {bound.stderr.strip()}")
        mounted_here.append(directory)
        remounted = _mount("-o", "remount,bind,ro", directory)
        if remounted.returncode:
            pytest.skip(f"remounting {directory} read-only failed: {remounted.stderr.strip()}")
        return directory

    yield make
    for directory in reversed(mounted_here):
        subprocess.run(["umount", "-l", directory], capture_output=True)
