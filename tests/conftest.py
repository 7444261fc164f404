"""Shared fixtures: real data locations, a local mirror, small synthetic datasets."""

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Hundreds of short runs of small networks: XLA's compile time (about a second per
# new program) would double the suite. The tests of XLA, of the sparse layers and of
# 'auto' itself ask for it explicitly or clear this (fixture `xla_auto`).
os.environ.setdefault("LOTTERY_TICKET_XLA_AUTO", "off")

import numpy as np
import pytest

from lottery_ticket.foundations.dataset_base import DatasetBase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# .ci/run sets this; by default the shared data beside the repository.
DATA = os.environ.get("LOTTERY_TICKET_TEST_DATA",
                      os.path.join(os.path.dirname(REPO), "shared", "data"))


def _data_dir(name: str) -> str:
    path = os.path.join(DATA, name)
    if not os.path.isdir(path):
        message = (f"test data {path} is missing: set LOTTERY_TICKET_TEST_DATA to the "
                   "folder holding fashion-mnist/ and mnist-test/.")
        if os.environ.get("CI") or "LOTTERY_TICKET_TEST_DATA" in os.environ:
            pytest.fail(message)
        pytest.skip(message)
    return path


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


LENET = {"layers": [(300, "relu"), (100, "relu"), (10, None)]}
SMALL_FC = {"layers": [(32, "relu"), (16, "relu"), (10, None)]}


@pytest.fixture
def mnist_mirror(mnist_test_dir, tmp_path):
    """Serves a copy of the MNIST test files on 127.0.0.1 (an ephemeral port).

    Yields (base URL, the served directory); the training images are missing,
    as they are here.
    """
    served = tmp_path / "served"
    shutil.copytree(mnist_test_dir, served)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()
    httpd.server_close()


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
