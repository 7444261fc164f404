"""The IDX reader on real files, its errors, and the seeded batch order."""

import gzip
import os
import shutil

import numpy as np
import pytest

from conftest import synthetic_split
from lottery_ticket.datasets import dataset_mnist
from lottery_ticket.foundations.dataset_base import DatasetBase

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_reads_the_official_mnist_test_files(mnist_test_dir):
    images, labels = dataset_mnist.load_split(
        mnist_test_dir, dataset_mnist.TEST_IMAGES, dataset_mnist.TEST_LABELS)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
    assert images.max() == 255 and images.min() == 0


def test_reads_the_official_mnist_training_labels(mnist_test_dir):
    labels = dataset_mnist.read_idx(
        os.path.join(mnist_test_dir, "train-labels-idx1-ubyte.gz"), 2049)
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS


def test_uncompressed_files_read_the_same(mnist_test_dir, tmp_path):
    for name in (dataset_mnist.TEST_IMAGES, dataset_mnist.TEST_LABELS):
        with gzip.open(os.path.join(mnist_test_dir, name + ".gz")) as f:
            (tmp_path / name).write_bytes(f.read())
    plain = dataset_mnist.load_split(str(tmp_path), dataset_mnist.TEST_IMAGES,
                                     dataset_mnist.TEST_LABELS)
    packed = dataset_mnist.load_split(mnist_test_dir, dataset_mnist.TEST_IMAGES,
                                      dataset_mnist.TEST_LABELS)
    np.testing.assert_array_equal(plain[0], packed[0])


def test_fashion_mnist_with_validation_split(fashion_mnist_dir):
    data = dataset_mnist.DatasetMnist(fashion_mnist_dir, validation_size=5000)
    assert data.train[0].shape == (55000, 784) and data.validate[0].shape == (5000, 784)
    assert data.test[0].shape == (10000, 784)
    assert 0.0 <= data.train[0].min() and data.train[0].max() <= 1.0
    full = dataset_mnist.DatasetMnist(fashion_mnist_dir, flatten=False)
    assert full.validate is None and full.train[0].shape == (60000, 28, 28, 1)
    # The validation split is the end of the training file.
    np.testing.assert_array_equal(data.validate[0], full.train[0][55000:].reshape(5000, -1))
    assert np.bincount(full.test[1]).tolist() == [1000] * 10


def test_permute_labels_shuffles_labels_across_examples(fashion_mnist_dir):
    plain = dataset_mnist.DatasetMnist(fashion_mnist_dir)
    permuted = dataset_mnist.DatasetMnist(fashion_mnist_dir, permute_labels=True)
    assert np.bincount(permuted.train[1]).tolist() == np.bincount(plain.train[1]).tolist()
    assert np.mean(permuted.train[1] == plain.train[1]) < 0.2
    np.testing.assert_array_equal(permuted.test[1], plain.test[1])


def _copy_test_files(mnist_test_dir, tmp_path):
    for name in (dataset_mnist.TEST_IMAGES, dataset_mnist.TEST_LABELS):
        shutil.copy(os.path.join(mnist_test_dir, name + ".gz"), tmp_path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download_data"):
        dataset_mnist.DatasetMnist(str(tmp_path))


def test_wrong_magic_number_names_the_file(mnist_test_dir):
    with pytest.raises(dataset_mnist.IdxFormatError, match="t10k-labels.*magic number 2049"):
        dataset_mnist.read_idx(os.path.join(mnist_test_dir, "t10k-labels-idx1-ubyte.gz"),
                               2051)


def test_truncated_file_is_reported(mnist_test_dir, tmp_path):
    with gzip.open(os.path.join(mnist_test_dir, "t10k-images-idx3-ubyte.gz")) as f:
        data = f.read()
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(dataset_mnist.IdxFormatError, match="truncated"):
        dataset_mnist.read_idx(str(path), 2051)
    # A gzip stream cut short is reported too.
    packed = tmp_path / "cut.gz"
    packed.write_bytes(open(os.path.join(mnist_test_dir, "t10k-images-idx3-ubyte.gz"),
                            "rb").read()[:5000])
    with pytest.raises(dataset_mnist.IdxFormatError, match="cut.gz"):
        dataset_mnist.read_idx(str(packed), 2051)


def test_images_and_labels_of_different_lengths(mnist_test_dir, tmp_path):
    _copy_test_files(mnist_test_dir, tmp_path)
    labels = np.zeros(9999, np.uint8)
    header = (2049).to_bytes(4, "big") + (9999).to_bytes(4, "big")
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(header + labels.tobytes())
    with pytest.raises(dataset_mnist.IdxFormatError, match="10000 images.*9999 labels"):
        dataset_mnist.load_split(str(tmp_path), dataset_mnist.TEST_IMAGES,
                                 dataset_mnist.TEST_LABELS)


def make_dataset(seed, count=100, batch=7):
    return DatasetBase(synthetic_split(count, 0, features=3), batch,
                       synthetic_split(10, 1, features=3), train_order_seed=seed)


def test_batch_order_is_fixed_by_seed_and_reshuffled_each_epoch():
    a, b, c = make_dataset(5), make_dataset(5), make_dataset(6)
    assert a.iterations_per_epoch == 14
    np.testing.assert_array_equal(a.batch_indices(0, 40), b.batch_indices(0, 40))
    assert not np.array_equal(a.batch_indices(0, 14), c.batch_indices(0, 14))
    first, second = a.batch_indices(0, 14), a.batch_indices(14, 14)
    assert not np.array_equal(first, second)
    for epoch in (first, second):  # no example twice within an epoch
        assert len(np.unique(epoch)) == 14 * 7


def test_batch_indices_can_be_produced_in_any_chunks():
    data = make_dataset(1)
    whole = data.batch_indices(0, 50)
    pieces = np.concatenate([data.batch_indices(0, 13), data.batch_indices(13, 1),
                             data.batch_indices(14, 36)])
    np.testing.assert_array_equal(whole, pieces)


def test_bad_splits_are_errors():
    x, y = synthetic_split(10, 0, features=3)
    with pytest.raises(ValueError, match="10 examples but 9 labels"):
        DatasetBase((x, y[:9]), 2, (x, y))
    with pytest.raises(ValueError, match="train_batch_size"):
        DatasetBase((x, y), 11, (x, y))
