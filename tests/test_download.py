"""The downloader against a local HTTP server serving the real MNIST files."""

import os
import shutil

import pytest

from lottery_ticket.mnist_fc import download_data

CHECKSUMS = download_data.CHECKSUMS["mnist"]
AVAILABLE = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
             "train-labels-idx1-ubyte.gz"]


@pytest.fixture
def server(mnist_mirror):
    return mnist_mirror


def test_downloads_and_verifies_each_file(server, tmp_path, mnist_test_dir):
    url, _ = server
    target = tmp_path / "mnist"
    for name in AVAILABLE:
        path = download_data.download_file(name, CHECKSUMS[name], [url], str(target))
        assert open(path, "rb").read() == open(os.path.join(mnist_test_dir, name), "rb").read()
    assert sorted(os.listdir(target)) == sorted(AVAILABLE)


def test_falls_back_to_the_next_mirror(server, tmp_path):
    url, _ = server
    dead = "http://127.0.0.1:9/"  # discard port: connection refused
    name = "t10k-labels-idx1-ubyte.gz"
    path = download_data.download_file(name, CHECKSUMS[name], [dead, url], str(tmp_path))
    assert download_data.md5(open(path, "rb").read()) == CHECKSUMS[name]


def test_checksum_mismatch_names_the_url_and_writes_nothing(server, tmp_path):
    url, served = server
    name = "t10k-labels-idx1-ubyte.gz"
    (served / name).write_bytes(b"not the real file")
    with pytest.raises(download_data.DownloadError) as error:
        download_data.download_file(name, CHECKSUMS[name], [url], str(tmp_path / "out"))
    assert f"{url}{name}: checksum" in str(error.value)
    assert "by hand" in str(error.value)
    assert not (tmp_path / "out" / name).exists()


def test_missing_file_reports_every_url_tried(server, tmp_path):
    url, _ = server
    with pytest.raises(download_data.DownloadError) as error:
        download_data.download(str(tmp_path / "mnist"), "mnist", base_url=url)
    message = str(error.value)
    assert f"{url}train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message


def test_intact_files_are_kept_and_the_cli_exits_nonzero(server, tmp_path, mnist_test_dir):
    url, _ = server
    target = tmp_path / "mnist"
    target.mkdir()
    for name in AVAILABLE:
        shutil.copy(os.path.join(mnist_test_dir, name), target)
    stamp = os.stat(target / AVAILABLE[0]).st_mtime_ns
    with pytest.raises(SystemExit) as exit_info:
        download_data.main(str(target), "mnist", base_url=url)
    assert exit_info.value.code == 1
    assert os.stat(target / AVAILABLE[0]).st_mtime_ns == stamp


def test_unknown_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="fashion_mnist"):
        download_data.download(str(tmp_path), "cifar")
