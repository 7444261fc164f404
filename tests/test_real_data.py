"""The real test data, fetched by the project's downloader into a cache where it is
missing: from the real MNIST files served on 127.0.0.1, into an empty cache."""

import os
import shutil
import socket

import pytest

import real_data
from conftest import serving
from lottery_ticket.datasets import download

FILES = sorted(real_data.FOLDERS["mnist-test"][1])
OFFICIAL = download.checksums("mnist")


@pytest.fixture
def mirror(mnist_test_dir, tmp_path):
    """A copy of the real MNIST test files served as BASE/mnist-test/FILE.

    Yields (base URL, the served mnist-test folder).
    """
    served = tmp_path / "served"
    shutil.copytree(mnist_test_dir, served / "mnist-test")
    with serving(served) as url:
        yield url, served / "mnist-test"


def _environ(tmp_path, mirror_url, **more):
    """A user's environment: no LOTTERY_TICKET_TEST_DATA, no CI, an empty cache."""
    return {real_data.MIRROR_VARIABLE: mirror_url,
            real_data.CACHE_VARIABLE: str(tmp_path / "cache"), **more}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_missing_data_is_fetched_checked_and_then_read_from_the_cache(mirror, tmp_path):
    url, served = mirror
    environ = _environ(tmp_path, url)
    path = real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"), environ)
    assert path == str(tmp_path / "cache" / "mnist-test")
    assert sorted(os.listdir(path)) == FILES  # no temporary files, no training images
    for name in FILES:
        assert download.md5((tmp_path / "cache" / "mnist-test" / name).read_bytes()) == \
            OFFICIAL[name]
        assert (served / name).read_bytes() == (tmp_path / "cache" / "mnist-test" /
                                                name).read_bytes()
    stamps = {name: os.stat(os.path.join(path, name)).st_mtime_ns for name in FILES}

    # The server is gone: the second fetch is served by the cache alone.
    environ[real_data.MIRROR_VARIABLE] = f"http://127.0.0.1:{_closed_port()}/"
    assert real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"), environ) == path
    assert {name: os.stat(os.path.join(path, name)).st_mtime_ns for name in FILES} == stamps


def test_a_damaged_cached_file_is_fetched_again(mirror, tmp_path):
    url, served = mirror
    cached = tmp_path / "cache" / "mnist-test"
    cached.mkdir(parents=True)
    for name in FILES:
        shutil.copy(served / name, cached / name)
    (cached / FILES[0]).write_bytes(b"truncated")
    real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"),
                       _environ(tmp_path, url))
    assert (cached / FILES[0]).read_bytes() == (served / FILES[0]).read_bytes()


def test_a_damaged_served_file_is_refused_and_nothing_is_cached(mirror, tmp_path):
    url, served = mirror
    first = real_data.FOLDERS["mnist-test"][1][0]  # fetched first
    data = bytearray((served / first).read_bytes())
    data[100] ^= 0xFF  # same size, one byte changed
    (served / first).write_bytes(bytes(data))
    with pytest.raises(pytest.fail.Exception) as failure:
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"),
                           _environ(tmp_path, url))
    message = str(failure.value)
    assert f"could not download {first}" in message
    assert f"{url}mnist-test/{first}: checksum" in message
    assert OFFICIAL[first] in message
    assert real_data.MIRROR_VARIABLE in message and real_data.DATA_VARIABLE in message
    assert not (tmp_path / "cache").exists()


def test_an_unreachable_mirror_skips_saying_how_to_provide_the_data(tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/"
    with pytest.raises(pytest.skip.Exception) as skip:
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"),
                           _environ(tmp_path, dead))
    message = str(skip.value)
    assert "could not be fetched" in message
    assert f"no connection to {dead}mnist-test/" in message
    assert real_data.DATA_VARIABLE in message and real_data.MIRROR_VARIABLE in message
    assert not (tmp_path / "cache" / "mnist-test").exists()


def test_a_mirror_missing_a_file_skips_and_keeps_what_it_fetched(mirror, tmp_path):
    url, served = mirror
    (served / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(pytest.skip.Exception, match=r"t10k-images-idx3-ubyte\.gz: HTTP "
                                                    r"Error 404"):
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"),
                           _environ(tmp_path, url))
    # The files fetched intact stay for the next session.
    assert sorted(os.listdir(tmp_path / "cache" / "mnist-test")) == [
        "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_a_cache_that_cannot_be_written_fails_saying_so(mirror, tmp_path):
    url, _ = mirror
    (tmp_path / "a-file").write_text("not a folder")
    environ = _environ(tmp_path, url, **{real_data.CACHE_VARIABLE: str(tmp_path / "a-file")})
    with pytest.raises(pytest.fail.Exception,
                       match=r"cannot write the test data cache .*a-file.*"
                             r"LOTTERY_TICKET_TEST_DATA_CACHE to a folder you can write"):
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"), environ)


def test_data_at_hand_is_used_and_nothing_is_fetched(mirror, tmp_path, mnist_test_dir):
    url, _ = mirror
    root = tmp_path / "shared-data"
    shutil.copytree(mnist_test_dir, root / "mnist-test")
    assert real_data.data_dir("mnist-test", str(root), _environ(tmp_path, url)) == \
        str(root / "mnist-test")
    given = _environ(tmp_path, url, **{real_data.DATA_VARIABLE: str(root)})
    assert real_data.data_dir("mnist-test", "/nowhere", given) == str(root / "mnist-test")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("variable", [real_data.DATA_VARIABLE, "CI"])
def test_a_named_folder_or_ci_fails_instead_of_fetching(variable, mirror, tmp_path):
    """LOTTERY_TICKET_TEST_DATA names where the data is; CI must have it."""
    url, _ = mirror
    environ = _environ(tmp_path, url, **{variable: str(tmp_path / "elsewhere")})
    with pytest.raises(pytest.fail.Exception, match=r"test data .*mnist-test is missing"):
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"), environ)
    assert not (tmp_path / "cache").exists()


def test_a_timeout_that_is_no_number_is_an_error(tmp_path):
    environ = _environ(tmp_path, "http://127.0.0.1:9/",
                       **{real_data.TIMEOUT_VARIABLE: "five"})
    with pytest.raises(pytest.fail.Exception, match="'five' is not a number of seconds"):
        real_data.data_dir("mnist-test", str(tmp_path / "no-shared-data"), environ)


def test_the_default_cache_is_the_users_cache_folder(tmp_path):
    assert real_data.default_cache({"XDG_CACHE_HOME": str(tmp_path)}) == \
        str(tmp_path / "lottery_ticket" / "test-data")
    assert real_data.default_cache({}) == os.path.join(
        os.path.expanduser("~"), ".cache", "lottery_ticket", "test-data")


def test_the_folders_are_registered_files_with_published_checksums():
    for folder, (dataset, names) in real_data.FOLDERS.items():
        assert set(names) <= set(download.checksums(dataset)), folder
    # Zalando's published MD5s: what the public mirror serves.
    assert download.checksums("fashion_mnist")["train-images-idx3-ubyte.gz"] == \
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d"


def test_hosts_behind_a_proxy_are_probed_through_it(mirror, monkeypatch):
    """A machine that reaches the internet only through a proxy is not offline."""
    url, _ = mirror
    far = "http://mirror.invalid/mnist/"  # .invalid never resolves
    for variable in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    assert real_data.reachable([far, "/a/local/folder"], 2.0) == ["/a/local/folder"]
    monkeypatch.setenv("http_proxy", url)
    assert real_data.reachable([far], 2.0) == [far]
