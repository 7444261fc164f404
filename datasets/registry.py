"""Data sets by name: how to build each one and where its files come from.

Each entry is a ``DatasetSpec``: a builder that reads the files at a location
into a ``DatasetBase``, and the published files with their checksums and
mirrors, which ``datasets.download`` fetches. A new data set registers one::

    DATASETS.register("my_data", DatasetSpec(build_my_data, files={...}, mirrors=[...]))
"""

import dataclasses
import hashlib
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from lottery_ticket.datasets import cifar10
from lottery_ticket.datasets import dataset_mnist
from lottery_ticket.foundations import save_restore
from lottery_ticket.foundations.dataset_base import DatasetBase
from lottery_ticket.foundations.registry import Registry

Builder = Callable[..., DatasetBase]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to read a data set, and where to download it from.

    Attributes:
      build: ``build(location, *, flatten, validation_size, batch_size,
        train_order_seed) -> DatasetBase``.
      files: file name -> published MD5.
      mirrors: base URLs tried in turn.
      verify: verify(location) reads the files back after a download, so a
        file that does not parse is found before anyone trains on it.
      archives: names in `files` that are tar.gz archives: the downloader
        extracts them into the location (safely: no path may leave it).
      read_files: read_files(location) -> the files (relative to the
        location) that the reader reads there, checksummed as the data's
        identity; None: the entries of `files`.
    """
    build: Builder
    files: Dict[str, str] = dataclasses.field(default_factory=dict)
    mirrors: List[str] = dataclasses.field(default_factory=list)
    verify: Callable[[str], None] = lambda location: None
    archives: Tuple[str, ...] = ()
    read_files: Optional[Callable[[str], List[str]]] = None


def _build_idx(location: str, *, flatten: bool = True, validation_size: int = 0,
               batch_size: int = 60, train_order_seed: int = 0) -> DatasetBase:
    return dataset_mnist.DatasetMnist(location, flatten=flatten,
                                      train_order_seed=train_order_seed,
                                      train_batch_size=batch_size,
                                      validation_size=validation_size)


def _verify_idx(location: str) -> None:
    for images, labels in ((dataset_mnist.TRAIN_IMAGES, dataset_mnist.TRAIN_LABELS),
                           (dataset_mnist.TEST_IMAGES, dataset_mnist.TEST_LABELS)):
        dataset_mnist.load_split(location, images, labels)


DATASETS: Registry[DatasetSpec] = Registry("dataset")
DATASETS.register("mnist", DatasetSpec(
    _build_idx,
    files={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
           "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
           "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
           "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    mirrors=["https://storage.googleapis.com/cvdf-datasets/mnist/",
             "https://ossci-datasets.s3.amazonaws.com/mnist/"],
    verify=_verify_idx))
# Same files, format and shapes as MNIST; the MD5s are those Zalando publishes.
DATASETS.register("fashion_mnist", DatasetSpec(
    _build_idx,
    files={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
           "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
           "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
           "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    mirrors=["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    verify=_verify_idx))


def _build_idx_32(location: str, *, flatten: bool = True, validation_size: int = 0,
                  batch_size: int = 60, train_order_seed: int = 0) -> DatasetBase:
    """The IDX images zero-padded by 2 pixels to 32x32x1: CIFAR's size, for the
    CIFAR networks (ResNet-20, VGG-16) where CIFAR-10 cannot be had."""
    data = _build_idx(location, flatten=False, validation_size=validation_size,
                      batch_size=batch_size, train_order_seed=train_order_seed)

    def padded(split):
        if split is None:
            return None
        images = np.pad(split[0], [(0, 0), (2, 2), (2, 2), (0, 0)])
        return (images.reshape(len(images), -1) if flatten else images, split[1])

    return DatasetBase(padded(data.train), batch_size, padded(data.test),
                       validate=padded(data.validate), train_order_seed=train_order_seed)


# Fashion-MNIST's files, read as 32x32x1 images.
DATASETS.register("fashion_mnist_32", dataclasses.replace(
    DATASETS.get("fashion_mnist"), build=_build_idx_32))


def _build_cifar10(location: str, *, flatten: bool = True, validation_size: int = 0,
                   batch_size: int = 60, train_order_seed: int = 0) -> DatasetBase:
    return cifar10.DatasetCifar10(location, flatten=flatten, train_order_seed=train_order_seed,
                                  train_batch_size=batch_size, validation_size=validation_size)


def _verify_cifar10(location: str) -> None:
    cifar10.load(location)


# The python-pickle archive Alex Krizhevsky publishes, with its published MD5; the
# downloader extracts it to cifar-10-batches-py/. The reader also takes the binary
# version (cifar-10-binary.tar.gz, MD5 in CIFAR10_BINARY_MD5), placed by hand.
DATASETS.register("cifar10", DatasetSpec(
    _build_cifar10,
    files={cifar10.PYTHON_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
    mirrors=["https://www.cs.toronto.edu/~kriz/"],
    verify=_verify_cifar10,
    archives=(cifar10.PYTHON_ARCHIVE,),
    read_files=cifar10.data_files))
CIFAR10_BINARY_MD5 = {cifar10.BINARY_ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"}


def build(name: str, location: str, *, flatten: bool = True, validation_size: int = 0,
          batch_size: int = 60, train_order_seed: int = 0) -> DatasetBase:
    """Reads the data set `name` from `location`.

    Args:
      name: a registered data set's name.
      location: the directory holding its files.
      flatten: give each example as a vector instead of an image.
      validation_size: examples held out from the end of the training set as the validation
        split.
      batch_size: examples per training batch.
      train_order_seed: seeds the order of the training batches.

    Returns:
      The data set, a DatasetBase.

    Raises:
      ValueError: `name` is not registered (the message lists those that are).
    """
    return DATASETS.get(name).build(location, flatten=flatten,
                                    validation_size=validation_size,
                                    batch_size=batch_size, train_order_seed=train_order_seed)


_CACHE_FILE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                           "lottery_ticket", "checksums.json")
_checksums: Dict[Tuple[str, int, int], str] = {}


def file_md5(path: str) -> str:
    """Hex MD5 of a file, read in blocks.

    Args:
      path: the file.
    """
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _md5(path: str) -> str:
    """MD5 of a file, cached by (path, size, mtime) in memory and in a user cache file."""
    status = os.stat(path)
    key = (os.path.abspath(path), status.st_size, status.st_mtime_ns)
    if key in _checksums:
        return _checksums[key]
    text_key = "|".join(str(part) for part in key)
    stored: Dict[str, str] = {}
    try:
        stored = save_restore.read_json(_CACHE_FILE)
    except (OSError, ValueError):
        pass
    if not isinstance(stored, dict):
        stored = {}
    if text_key not in stored:
        stored[text_key] = file_md5(path)
        try:  # The cache only saves time: a read-only home directory is no error.
            save_restore.write_json(_CACHE_FILE, stored)
        except OSError:
            pass
    _checksums[key] = stored[text_key]
    return stored[text_key]


def fingerprint(name: str, location: str) -> Dict[str, Any]:
    """What identifies a data set on disk: its name and the MD5 of each of its files.

    A file may be stored compressed (as published) or not; the one the reader
    reads (the uncompressed one, where both exist) is checksummed. A data set
    with ``read_files`` is identified by the files it names (CIFAR-10: the
    extracted batches, or the archive where only that is there); one
    registered without a list of files by every file in its location.
    Missing files are left for the reader to report.

    Args:
      name: a registered data set's name.
      location: the directory holding its files.
    """
    spec = DATASETS.get(name)
    if spec.read_files is not None:
        return {"dataset": name, "files": {
            relative: _md5(os.path.join(location, relative))
            for relative in spec.read_files(location)}}
    expected = list(spec.files)
    if not expected and os.path.isdir(location):
        expected = sorted(entry for entry in os.listdir(location)
                          if os.path.isfile(os.path.join(location, entry)))
    files = {}
    for filename in expected:
        stem = filename[:-3] if filename.endswith(".gz") else filename
        for candidate in dict.fromkeys((stem, filename)):  # as dataset_mnist.find_file
            path = os.path.join(location, candidate)
            if os.path.isfile(path):
                files[candidate] = _md5(path)
                break
    return {"dataset": name, "files": files}
