"""CIFAR-10 on small files written in the official formats (it cannot be downloaded here)."""

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from lottery_ticket.datasets import cifar10
from lottery_ticket.datasets import download
from lottery_ticket.datasets import registry

# Not 10,000 per batch: the reader takes the count from the files.
COUNTS = {"data_batch_1": 40, "data_batch_2": 30, "data_batch_3": 40, "data_batch_4": 35,
          "data_batch_5": 45, "test_batch": 50}
TRAIN = sum(COUNTS[name] for name in cifar10.TRAIN_BATCHES)  # 190


def make_batches(seed=0):
    """batch name -> (uint8 pixels [N, 3072] as published: R, G, B planes; labels [N]).

    Each channel has its own range, and the last training batch (where the
    validation split comes from) is brighter, so statistics over the wrong
    examples or channels show.
    """
    rng = np.random.default_rng(seed)
    batches = {}
    for name, count in COUNTS.items():
        low = 100 if name == "data_batch_5" else 0
        planes = [rng.integers(low, high, (count, 1024)) for high in (120, 200, 256)]
        pixels = np.concatenate(planes, axis=1).astype(np.uint8)
        batches[name] = pixels, rng.integers(0, 10, count).astype(np.uint8)
    return batches


def write_python(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        # As published: pickled by Python 2 (protocol 2), bytes keys, labels a list.
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": pixels,
                 b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}
        data = pickle.dumps(batch, protocol=2)
        # The published pickles name NumPy 1's module, as NumPy before 2.0 wrote them.
        data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


def write_binary(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        records = np.concatenate([labels[:, None], pixels], axis=1)
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            f.write(records.astype(np.uint8).tobytes())


def write_archive(path, folder, arcname):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname=arcname)


@pytest.fixture(scope="module")
def batches():
    return make_batches()


@pytest.fixture
def python_dir(tmp_path, batches):
    write_python(tmp_path / "py" / cifar10.PYTHON_DIR, batches)
    return tmp_path / "py"


@pytest.fixture
def binary_dir(tmp_path, batches):
    write_binary(tmp_path / "bin" / cifar10.BINARY_DIR, batches)
    return tmp_path / "bin"


def _md5(path):
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


# --- formats ----------------------------------------------------------------------------

def test_images_are_nhwc_from_the_colour_planes(python_dir, batches):
    (train_x, train_y), (test_x, test_y) = cifar10.load(str(python_dir))
    assert train_x.shape == (TRAIN, 32, 32, 3) and train_x.dtype == np.uint8
    assert test_x.shape == (50, 32, 32, 3) and test_y.shape == (50,)
    pixels, labels = batches["data_batch_2"]
    first = COUNTS["data_batch_1"]
    # Pixel (row h, column w) of channel c is byte c * 1024 + h * 32 + w of the record.
    for n, h, w, c in [(0, 0, 0, 0), (3, 5, 7, 1), (29, 31, 30, 2), (11, 31, 0, 0)]:
        assert train_x[first + n, h, w, c] == pixels[n, c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(train_y[first:first + 30], labels)
    np.testing.assert_array_equal(test_y, batches["test_batch"][1])


def test_python_binary_and_archives_give_identical_arrays(python_dir, binary_dir, tmp_path):
    expected = cifar10.load(str(python_dir))
    write_archive(tmp_path / "pa" / cifar10.PYTHON_ARCHIVE,
                  python_dir / cifar10.PYTHON_DIR, cifar10.PYTHON_DIR)
    write_archive(tmp_path / "ba" / cifar10.BINARY_ARCHIVE,
                  binary_dir / cifar10.BINARY_DIR, cifar10.BINARY_DIR)
    for location in (binary_dir, binary_dir / cifar10.BINARY_DIR,
                     python_dir / cifar10.PYTHON_DIR, tmp_path / "pa", tmp_path / "ba"):
        got = cifar10.load(str(location))
        for split in range(2):
            for part in range(2):
                np.testing.assert_array_equal(got[split][part], expected[split][part])
    from_python = cifar10.DatasetCifar10(str(python_dir), validation_size=20)
    from_binary = cifar10.DatasetCifar10(str(binary_dir), validation_size=20)
    for name, (x, y) in from_python.splits.items():
        np.testing.assert_array_equal(x, from_binary.splits[name][0])
        np.testing.assert_array_equal(y, from_binary.splits[name][1])


def test_extracted_folder_is_read_before_the_archive(python_dir, tmp_path, batches):
    other = make_batches(seed=1)
    write_python(tmp_path / "other", other)
    write_archive(python_dir / cifar10.PYTHON_ARCHIVE, tmp_path / "other", cifar10.PYTHON_DIR)
    (_, _), (_, test_y) = cifar10.load(str(python_dir))
    np.testing.assert_array_equal(test_y, batches["test_batch"][1])


# --- the data set -----------------------------------------------------------------------

def test_shapes_dtypes_and_validation_split(python_dir, batches):
    data = cifar10.DatasetCifar10(str(python_dir), validation_size=25, train_order_seed=3,
                                  train_batch_size=10)
    assert data.train[0].shape == (TRAIN - 25, 32, 32, 3) and data.train[0].dtype == np.float32
    assert data.validate[0].shape == (25, 32, 32, 3) and data.test[0].shape == (50, 32, 32, 3)
    assert data.train[1].dtype == data.validate[1].dtype == data.test[1].dtype == np.int32
    assert data.example_shape == (32, 32, 3) and data.iterations_per_epoch == 16
    # The validation split is the end of the training set: the last 25 of data_batch_5.
    np.testing.assert_array_equal(data.validate[1], batches["data_batch_5"][1][-25:])
    raw = cifar10.DatasetCifar10(str(python_dir), normalize=False)
    assert raw.validate is None and raw.train[0].shape == (TRAIN, 32, 32, 3)
    np.testing.assert_array_equal(raw.train[0][-25:], _normalized_back(data, data.validate[0]))
    flat = cifar10.DatasetCifar10(str(python_dir), validation_size=25, flatten=True)
    assert flat.train[0].shape == (TRAIN - 25, 3072) and flat.example_shape == (3072,)
    np.testing.assert_array_equal(flat.validate[0], data.validate[0].reshape(25, -1))


def _normalized_back(data, images):
    return np.round((images * data.channel_std + data.channel_mean) * 255) / 255.0


def test_normalization_uses_the_training_part_only(python_dir):
    data = cifar10.DatasetCifar10(str(python_dir), validation_size=45)  # all of batch 5
    raw = cifar10.DatasetCifar10(str(python_dir), normalize=False)
    training = raw.train[0][:TRAIN - 45].astype(np.float64)
    np.testing.assert_allclose(data.channel_mean, training.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(data.channel_std, training.std(axis=(0, 1, 2)), rtol=1e-6)
    # Per channel, the training part is standardized ...
    np.testing.assert_allclose(data.train[0].mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(data.train[0].std(axis=(0, 1, 2)), 1, atol=1e-5)
    # ... with its own statistics (the brighter validation batch left out: the whole
    # training set's mean is higher), and test and validation with the same ones.
    whole = raw.train[0].mean(axis=(0, 1, 2))
    assert (whole - data.channel_mean > 0.03).all()
    expected_test = (raw.test[0] - data.channel_mean) / data.channel_std
    np.testing.assert_allclose(data.test[0], expected_test, rtol=1e-6, atol=1e-6)
    assert data.validate[0].mean() > 0.5  # brighter than the training part
    # The channels have their own ranges (red 0..119, green 0..199, blue 0..255).
    assert data.channel_mean[0] < data.channel_mean[1] < data.channel_mean[2]


def test_registered_with_the_published_archive_and_checksum(python_dir):
    spec = registry.DATASETS.get("cifar10")
    assert spec.files == {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}
    assert spec.mirrors == ["https://www.cs.toronto.edu/~kriz/"]
    assert registry.CIFAR10_BINARY_MD5 == {
        "cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"}
    data = registry.build("cifar10", str(python_dir), flatten=False, validation_size=10,
                          batch_size=20, train_order_seed=4)
    assert isinstance(data, cifar10.DatasetCifar10)
    assert data.train[0].shape == (TRAIN - 10, 32, 32, 3) and data.train_batch_size == 20
    assert registry.build("cifar10", str(python_dir)).train[0].shape == (TRAIN, 3072)


def test_the_data_identity_is_the_batches_read(python_dir, tmp_path):
    found = registry.fingerprint("cifar10", str(python_dir))
    assert found["dataset"] == "cifar10"
    assert sorted(found["files"]) == sorted(f"{cifar10.PYTHON_DIR}/{name}" for name in COUNTS)
    assert found["files"][f"{cifar10.PYTHON_DIR}/test_batch"] == _md5(
        python_dir / cifar10.PYTHON_DIR / "test_batch")
    write_archive(tmp_path / "a" / cifar10.PYTHON_ARCHIVE, python_dir / cifar10.PYTHON_DIR,
                  cifar10.PYTHON_DIR)
    assert registry.fingerprint("cifar10", str(tmp_path / "a"))["files"] == {
        cifar10.PYTHON_ARCHIVE: _md5(tmp_path / "a" / cifar10.PYTHON_ARCHIVE)}
    assert registry.fingerprint("cifar10", str(tmp_path / "none"))["files"] == {}


# --- errors -----------------------------------------------------------------------------

def test_no_data_says_what_was_looked_for_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 data in .*cifar-10-batches-py/"
                                                r".*cifar-10-python.tar.gz.*"
                                                r"cifar10_conv.download_data --location"):
        cifar10.DatasetCifar10(str(tmp_path))


def test_a_missing_batch_is_named(python_dir):
    os.remove(python_dir / cifar10.PYTHON_DIR / "data_batch_3")
    with pytest.raises(FileNotFoundError, match=r"batch .*data_batch_3 is missing \(1 of 6"):
        cifar10.load(str(python_dir))


def test_a_truncated_pickle_is_named(python_dir):
    path = python_dir / cifar10.PYTHON_DIR / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(cifar10.Cifar10FormatError, match=r"data_batch_2: .*truncated"):
        cifar10.load(str(python_dir))


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", r"test_batch: not a CIFAR-10 python batch"),
    (pickle.dumps({"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]}),
     r"test_batch: data is uint8 \(3, 100\), expected uint8 \[N, 3072\]"),
    (pickle.dumps({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}),
     r"test_batch: 3 images but labels of shape \(2,\)"),
    (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}),
     r"test_batch: labels run from 0 to 10"),
    (pickle.dumps([1, 2, 3]), r"test_batch: not a CIFAR-10 python batch \(no data"),
])
def test_a_corrupt_pickle_is_named(python_dir, content, message):
    (python_dir / cifar10.PYTHON_DIR / "test_batch").write_bytes(content)
    with pytest.raises(cifar10.Cifar10FormatError, match=message):
        cifar10.load(str(python_dir))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_pickle_that_would_run_code_is_refused(python_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (python_dir / cifar10.PYTHON_DIR / "test_batch").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(cifar10.Cifar10FormatError, match=r"refers to (posix|os)\.system"):
        cifar10.load(str(python_dir))
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_binary_batch_is_named(binary_dir):
    path = binary_dir / cifar10.BINARY_DIR / "data_batch_4.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(cifar10.Cifar10FormatError,
                       match=r"data_batch_4.bin: 107455 bytes is not a whole number of "
                             r"3073-byte records .*truncated"):
        cifar10.load(str(binary_dir))


def test_a_corrupt_binary_label_is_named(binary_dir):
    path = binary_dir / cifar10.BINARY_DIR / "test_batch.bin"
    data = bytearray(path.read_bytes())
    data[3073] = 200  # the second record's label byte
    path.write_bytes(bytes(data))
    with pytest.raises(cifar10.Cifar10FormatError, match=r"test_batch.bin: labels run from "
                                                         r"\d to 200"):
        cifar10.load(str(binary_dir))


def test_a_truncated_or_foreign_archive_is_named(python_dir, tmp_path):
    archive = tmp_path / "a" / cifar10.PYTHON_ARCHIVE
    write_archive(archive, python_dir / cifar10.PYTHON_DIR, cifar10.PYTHON_DIR)
    archive.write_bytes(archive.read_bytes()[:len(archive.read_bytes()) // 2])
    with pytest.raises(cifar10.Cifar10FormatError, match=r"cifar-10-python.tar.gz.*truncated"):
        cifar10.load(str(tmp_path / "a"))
    write_archive(archive, python_dir / cifar10.PYTHON_DIR, "elsewhere")
    with pytest.raises(cifar10.Cifar10FormatError,
                       match=r"has no file cifar-10-batches-py/data_batch_1"):
        cifar10.load(str(tmp_path / "a"))


def test_validation_split_must_leave_training_examples(python_dir):
    with pytest.raises(ValueError, match=r"validation_size 5000 must be in \[0, 190\)"):
        cifar10.DatasetCifar10(str(python_dir), validation_size=5000)


# --- download, end to end over 127.0.0.1 ------------------------------------------------

@pytest.fixture
def cifar_mirror(mnist_mirror, python_dir):
    """The local mirror serving a generated cifar-10-python.tar.gz; its MD5."""
    url, served = mnist_mirror
    archive = served / cifar10.PYTHON_ARCHIVE
    write_archive(archive, python_dir / cifar10.PYTHON_DIR, cifar10.PYTHON_DIR)
    return url, archive, _md5(archive)


@pytest.fixture
def register(monkeypatch):
    """register(url, md5): 'cifar10_generated', CIFAR-10 with the generated archive's MD5.

    The published MD5 is the real archive's; this spec checks the generated
    one. The entry is gone after the test.
    """
    def register_spec(url, md5):
        spec = dataclasses.replace(registry.DATASETS.get("cifar10"),
                                   files={cifar10.PYTHON_ARCHIVE: md5}, mirrors=[url])
        monkeypatch.setitem(registry.DATASETS._entries, "cifar10_generated", spec)
    return register_spec


def test_download_fetches_verifies_and_extracts(cifar_mirror, python_dir, tmp_path, register):
    url, archive, md5 = cifar_mirror
    register(url, md5)
    target = tmp_path / "downloaded"
    written = download.download(str(target), "cifar10_generated")
    assert written[0] == str(target / cifar10.PYTHON_ARCHIVE)
    assert sorted(os.path.basename(path) for path in written[1:]) == sorted(COUNTS)
    assert (target / cifar10.PYTHON_ARCHIVE).read_bytes() == archive.read_bytes()
    for name in COUNTS:
        assert _md5(target / cifar10.PYTHON_DIR / name) == _md5(
            python_dir / cifar10.PYTHON_DIR / name)
    data = registry.build("cifar10_generated", str(target), flatten=False, validation_size=10)
    expected = cifar10.DatasetCifar10(str(python_dir), validation_size=10)
    np.testing.assert_array_equal(data.train[0], expected.train[0])
    # A second download keeps every file as it is.
    stamps = {path: os.stat(path).st_mtime_ns for path in written}
    assert download.download(str(target), "cifar10_generated") == written
    assert {path: os.stat(path).st_mtime_ns for path in written} == stamps


def test_download_refuses_a_checksum_mismatch(cifar_mirror, tmp_path, register):
    url, _, md5 = cifar_mirror
    wrong = "0" * 32
    register(url, wrong)
    with pytest.raises(download.DownloadError) as error:
        download.download(str(tmp_path / "out"), "cifar10_generated")
    message = str(error.value)
    assert f"{url}{cifar10.PYTHON_ARCHIVE}: checksum {md5}, expected {wrong}" in message
    assert "by hand" in message
    assert os.listdir(tmp_path / "out") == []


def test_download_refuses_an_archive_leaving_the_location(mnist_mirror, python_dir, tmp_path,
                                                          register):
    url, served = mnist_mirror
    archive = served / cifar10.PYTHON_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(python_dir / cifar10.PYTHON_DIR, arcname=cifar10.PYTHON_DIR)
        evil = tarfile.TarInfo("../outside.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    register(url, _md5(archive))
    target = tmp_path / "nested" / "out"
    with pytest.raises(download.DownloadError, match=r"refusing to extract '../outside.txt': "
                                                     r"the path leads outside"):
        download.download(str(target), "cifar10_generated")
    assert not (tmp_path / "nested" / "outside.txt").exists()
    assert os.listdir(target) == [cifar10.PYTHON_ARCHIVE]  # nothing extracted
