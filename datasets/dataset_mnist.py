"""MNIST (and Fashion-MNIST, which has the same files) from IDX files.

A location is a directory holding the four standard files, each either
gzip-compressed (``.gz``) or not::

    train-images-idx3-ubyte  train-labels-idx1-ubyte
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte
"""

import gzip
import os
from typing import Optional, Tuple

import numpy as np

from lottery_ticket.foundations.dataset_base import DatasetBase

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_IMAGES_MAGIC = 2051  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 2049  # unsigned bytes, 1 dimension


class IdxFormatError(ValueError):
    """An IDX file is missing, truncated or not of the expected kind."""


def find_file(location: str, name: str) -> str:
    """Path of `name` or `name.gz` in `location`; a clear error if neither.

    Args:
      location: the directory holding the IDX files.
      name: the file's name, without .gz.

    Raises:
      NotADirectoryError: `location` is a file (one of the IDX files, say).
      FileNotFoundError: neither file is there.
    """
    if os.path.isfile(location):
        raise NotADirectoryError(
            f"the data location {location} is a file, not a directory: pass the directory "
            "holding the four IDX files as --mnist_location (or --data_location), e.g. "
            f"{os.path.dirname(os.path.abspath(location))}.")
    for candidate in (os.path.join(location, name), os.path.join(location, name + ".gz")):
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"{name}[.gz] is missing from {location!r}. Download the data with "
        "`python -m lottery_ticket.mnist_fc.download_data --location=DIR` or "
        "place the four IDX files there by hand.")


def _read_bytes(path: str) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as error:
        raise IdxFormatError(f"{path}: cannot be read ({error}); the file is damaged or "
                             "truncated. Download it again.") from error


def read_idx(path: str, expected_magic: int) -> np.ndarray:
    """Reads an IDX file of unsigned bytes into a uint8 array.

    Args:
      path: the IDX file (.gz or not).
      expected_magic: the magic number its header must hold (images and labels differ).

    Raises:
      IdxFormatError: the magic number is not `expected_magic` or the file
        holds fewer bytes than its header promises.
    """
    data = _read_bytes(path)
    dimensions = expected_magic & 0xFF
    header = 4 + 4 * dimensions
    if len(data) < header:
        raise IdxFormatError(f"{path}: only {len(data)} bytes, shorter than the IDX "
                             f"header ({header} bytes); the file is truncated.")
    magic = int.from_bytes(data[0:4], "big")
    if magic != expected_magic:
        raise IdxFormatError(
            f"{path}: magic number {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == _IMAGES_MAGIC else 'labels'}); this is "
            "not the right IDX file (or it is compressed without a .gz name).")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dimensions))
    size = int(np.prod(shape))
    if len(data) - header < size:
        raise IdxFormatError(f"{path}: header promises {size} bytes of data for shape "
                             f"{shape}, found {len(data) - header}; the file is truncated.")
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(shape)


def load_split(location: str, images_name: str, labels_name: str
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Reads one split: uint8 images [N, 28, 28] and uint8 labels [N].

    Args:
      location: the directory holding the IDX files.
      images_name: the images file's name (without .gz).
      labels_name: the labels file's name (without .gz).

    Raises:
      IdxFormatError: a damaged file, or images and labels of different counts.
      FileNotFoundError: a file is missing (see find_file; NotADirectoryError where
        `location` is a file).
    """
    images_path = find_file(location, images_name)
    labels_path = find_file(location, labels_name)
    images = read_idx(images_path, _IMAGES_MAGIC)
    labels = read_idx(labels_path, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise IdxFormatError(f"{images_path} holds {len(images)} images but "
                             f"{labels_path} holds {len(labels)} labels.")
    return images, labels


class DatasetMnist(DatasetBase):
    """MNIST or Fashion-MNIST read from a directory of IDX files.

    Args:
      mnist_location: directory with the four IDX files (.gz or not).
      flatten: give each image as a vector of 784 values; otherwise 28x28x1.
      permute_labels: shuffle the training labels across examples (a sanity
        control: the labels then carry no signal and a network can only
        memorize). Uses `permutation_seed`.
      train_order_seed: seeds the order of training batches.
      train_batch_size: examples per training batch (60 in the paper).
      validation_size: examples held out from the end of the training set as
        the validation split (5,000 in the paper); 0 for none.
      normalize: scale pixels to [0, 1]; otherwise keep 0..255.
      permutation_seed: seeds the label permutation.

    Raises:
      ValueError: `validation_size` is not in [0, training examples).
    """

    def __init__(self, mnist_location: str, flatten: bool = True,
                 permute_labels: bool = False, train_order_seed: Optional[int] = None,
                 train_batch_size: int = 60, validation_size: int = 0,
                 normalize: bool = True, permutation_seed: int = 0):
        train_x, train_y = load_split(mnist_location, TRAIN_IMAGES, TRAIN_LABELS)
        test_x, test_y = load_split(mnist_location, TEST_IMAGES, TEST_LABELS)
        if not 0 <= int(validation_size) < len(train_x):
            raise ValueError(f"validation_size {validation_size} must be in [0, "
                             f"{len(train_x)}) for {len(train_x)} training examples.")

        def prepare(images: np.ndarray) -> np.ndarray:
            images = images.astype(np.float32)
            if normalize:
                images /= 255.0
            return images.reshape(len(images), -1) if flatten else images[..., None]

        train_x, test_x = prepare(train_x), prepare(test_x)
        train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
        if permute_labels:
            rng = np.random.default_rng(permutation_seed)
            train_y = rng.permutation(train_y)
        validate = None
        if validation_size:
            cut = len(train_x) - int(validation_size)
            validate = (train_x[cut:], train_y[cut:])
            train_x, train_y = train_x[:cut], train_y[:cut]
        self.location = mnist_location
        super().__init__((train_x, train_y), train_batch_size, (test_x, test_y),
                         validate=validate, train_order_seed=train_order_seed)
