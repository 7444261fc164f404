"""The downloader against a local HTTP server serving the real MNIST files; safe extraction."""

import io
import os
import shutil
import tarfile

import pytest

from lottery_ticket.datasets import download
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
    assert error.value.checksum_mismatches == (f"{url}{name}",)
    assert not (tmp_path / "out" / name).exists()


def test_missing_file_reports_every_url_tried(server, tmp_path):
    url, _ = server
    with pytest.raises(download_data.DownloadError) as error:
        download_data.download(str(tmp_path / "mnist"), "mnist", base_url=url)
    message = str(error.value)
    assert f"{url}train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    # A missing file is no damaged one: callers tell the two apart by this.
    assert error.value.checksum_mismatches == ()


def test_a_data_set_download_names_the_urls_that_served_damaged_files(server, tmp_path):
    url, served = server
    name = "t10k-labels-idx1-ubyte.gz"
    (served / name).write_bytes(b"not the real file")
    with pytest.raises(download_data.DownloadError, match="2 of 4 files") as error:
        download_data.download(str(tmp_path / "mnist"), "mnist", base_url=url)
    # The missing training images are no damage; only the altered labels are.
    assert error.value.checksum_mismatches == (f"{url}{name}",)
    assert not (tmp_path / "mnist" / name).exists()


def test_intact_files_are_kept_and_main_raises(server, tmp_path, mnist_test_dir):
    """main raises; the command line makes it one `error:` line, exit status 2
    (test_faults.test_the_downloader_names_every_missing_file_at_once)."""
    url, _ = server
    target = tmp_path / "mnist"
    target.mkdir()
    for name in AVAILABLE:
        shutil.copy(os.path.join(mnist_test_dir, name), target)
    stamp = os.stat(target / AVAILABLE[0]).st_mtime_ns
    with pytest.raises(download_data.DownloadError, match="1 of 4 files could not be"):
        download_data.main(str(target), "mnist", base_url=url)
    assert os.stat(target / AVAILABLE[0]).st_mtime_ns == stamp


def test_unknown_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'\. Registered: "
                                         r"cifar10, (.*, )?fashion_mnist, (.*, )?mnist"):
        download_data.download(str(tmp_path), "imagenet")
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'\. Did you mean 'cifar10'\?"):
        download_data.download(str(tmp_path), "cifar")


def _archive(path, members):
    """A tar.gz of (TarInfo, bytes or None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def _file(name):
    return tarfile.TarInfo(name), b"data"


def _folder(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def _link(name, kind, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("member, message", [
    (_file("../escape.txt"), "the path leads outside"),
    (_file("folder/../../escape.txt"), "the path leads outside"),
    (_file("/tmp/absolute.txt"), "the path leads outside"),
    (_link("folder/link", tarfile.SYMTYPE, "/etc/passwd"), "it is a link or a special file"),
    (_link("folder/hard", tarfile.LNKTYPE, "folder/ok.txt"), "it is a link or a special file"),
])
def test_extraction_refuses_unsafe_members_and_writes_nothing(tmp_path, member, message):
    archive = _archive(tmp_path / "a.tar.gz", [_file("folder/ok.txt"), member])
    target = tmp_path / "nested" / "out"
    target.mkdir(parents=True)
    with pytest.raises(download_data.DownloadError, match=f"a.tar.gz: refusing to extract "
                                                          f".*{message}"):
        download.extract_archive(archive, str(target))
    assert os.listdir(target) == [] and sorted(os.listdir(tmp_path / "nested")) == ["out"]


def test_extraction_writes_files_and_keeps_identical_ones(tmp_path):
    archive = _archive(tmp_path / "a.tar.gz", [
        _folder("folder"), _file("folder/same.txt"), _file("folder/new.txt"),
        _file("./top.txt")])
    target = tmp_path / "out"
    (target / "folder").mkdir(parents=True)
    (target / "folder" / "same.txt").write_bytes(b"data")
    (target / "folder" / "new.txt").write_bytes(b"other")
    stamp = os.stat(target / "folder" / "same.txt").st_mtime_ns
    os.utime(target / "folder" / "new.txt", ns=(1, 1))
    written = download.extract_archive(archive, str(target))
    assert written == [str(target / "folder" / "same.txt"), str(target / "folder" / "new.txt"),
                       str(target / "top.txt")]
    assert os.stat(target / "folder" / "same.txt").st_mtime_ns == stamp
    assert (target / "folder" / "new.txt").read_bytes() == b"data"
    assert (target / "top.txt").read_bytes() == b"data"
    assert sorted(os.listdir(target / "folder")) == ["new.txt", "same.txt"]  # no temporaries


def test_a_damaged_archive_is_an_error_naming_it(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(download_data.DownloadError, match=r"a.tar.gz: cannot be extracted "
                                                          r".*download it again"):
        download.extract_archive(str(tmp_path / "a.tar.gz"), str(tmp_path / "out"))


def test_a_file_and_a_folder_of_one_name_write_nothing(tmp_path):
    """Every member is checked before the first is written, clashes between them too."""
    archive = _archive(tmp_path / "a.tar.gz", [_file("first.txt"), _file("data"),
                                               _folder("data"), _file("data/inner.txt")])
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(download_data.DownloadError, match="'data' is both a file and a folder"):
        download.extract_archive(archive, str(target))
    assert os.listdir(target) == []


@pytest.mark.parametrize("link_name", ["folder", "folder/ok.txt"])
def test_extraction_does_not_follow_a_link_in_the_location(tmp_path, link_name):
    archive = _archive(tmp_path / "a.tar.gz", [_file("top.txt"), _file("folder/ok.txt")])
    target, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    target.mkdir()
    elsewhere.mkdir()
    if link_name == "folder":
        os.symlink(elsewhere, target / "folder")
    else:
        (target / "folder").mkdir()
        os.symlink(elsewhere / "ok.txt", target / "folder" / "ok.txt")
    with pytest.raises(download_data.DownloadError,
                       match=f"refusing to extract '{link_name}'.*a link already in the "
                             "location"):
        download.extract_archive(archive, str(target))
    assert os.listdir(elsewhere) == []
    assert not (target / "top.txt").exists()


def test_extraction_refuses_a_file_where_a_folder_is(tmp_path):
    archive = _archive(tmp_path / "a.tar.gz", [_file("top.txt"), _file("batches")])
    target = tmp_path / "out"
    (target / "batches").mkdir(parents=True)
    with pytest.raises(download_data.DownloadError, match="already exists as a folder"):
        download.extract_archive(archive, str(target))
    assert sorted(os.listdir(target)) == ["batches"]
