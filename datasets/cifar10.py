"""CIFAR-10 from the official python-pickle or binary batches.

A location is a directory holding one of these, looked for in this order::

    cifar-10-batches-py/    data_batch_1 .. data_batch_5, test_batch   (python)
    cifar-10-batches-bin/   data_batch_1.bin .. data_batch_5.bin, test_batch.bin
    cifar-10-python.tar.gz  the published archive of the python batches, read as is
    cifar-10-binary.tar.gz  the published archive of the binary batches

(or the batch files themselves, directly in the location). The downloader
(``datasets.download``, data set ``cifar10``) fetches ``cifar-10-python.tar.gz``
and extracts it beside itself, so a download location reads from the
extracted folder; an archive placed by hand is read without extracting it.

Both formats store each 32x32 colour image as 3,072 bytes: the red plane, then
green, then blue, each row by row. A python batch is a pickled dict with
``data`` (uint8 [N, 3072]) and ``labels`` (N ints); a binary batch is N
records of one label byte followed by the 3,072 pixel bytes. The number of
images per batch is read from the files (10,000 in the published ones).
Pickles are read with an unpickler that builds only numpy arrays and plain
values, so a tampered batch cannot run code.
"""

import io
import os
import pickle
import tarfile
from typing import Callable, List, Optional, Tuple

import numpy as np

from lottery_ticket.foundations.dataset_base import DatasetBase

PYTHON_DIR = "cifar-10-batches-py"
BINARY_DIR = "cifar-10-batches-bin"
PYTHON_ARCHIVE = "cifar-10-python.tar.gz"
BINARY_ARCHIVE = "cifar-10-binary.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
BATCHES = TRAIN_BATCHES + (TEST_BATCH,)

SIDE = 32
CHANNELS = 3
PIXELS = SIDE * SIDE * CHANNELS
RECORD = 1 + PIXELS  # binary format: label byte, then the pixels
CLASSES = 10

HOW_TO_GET = ("Download CIFAR-10 with `python -m lottery_ticket.cifar10_conv.download_data "
              "--location=DIR` (or datasets.download.download(DIR, "
              "'cifar10')), or place cifar-10-batches-py/ (from cifar-10-python.tar.gz, "
              "https://www.cs.toronto.edu/~kriz/) there by hand.")

Split = Tuple[np.ndarray, np.ndarray]


class Cifar10FormatError(ValueError):
    """A CIFAR-10 batch is truncated, damaged or not in the expected format."""


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain values; any other class is refused."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                # Python 3 writes bytes at protocol 2 as _codecs.encode(text, 'latin1').
                ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 "
                                         "batch never holds")
        return super().find_class(module, name)


def _field(batch: dict, key: str):
    # The published batches were pickled by Python 2: their keys are bytes.
    return batch.get(key.encode(), batch.get(key))


def _planes_to_images(pixels: np.ndarray) -> np.ndarray:
    """[N, 3072] channel planes -> [N, 32, 32, 3] (NHWC)."""
    return pixels.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)


def _check_labels(path: str, labels: np.ndarray) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= CLASSES):
        raise Cifar10FormatError(f"{path}: labels run from {labels.min()} to {labels.max()}, "
                                 f"not 0 to {CLASSES - 1}; the file is damaged or not a "
                                 "CIFAR-10 batch. Download it again.")
    return labels.astype(np.uint8)


def parse_python_batch(data: bytes, path: str) -> Split:
    """uint8 images [N, 32, 32, 3] and labels [N] from a pickled batch's bytes.

    Args:
      data: the batch file's bytes.
      path: the file, for messages.

    Raises:
      Cifar10FormatError: the bytes are truncated, not a pickle, or not a
        batch (no data/labels, or a wrong shape); the message names `path`.
    """
    try:
        batch = _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except EOFError as error:
        raise Cifar10FormatError(f"{path}: the pickle ends early ({len(data)} bytes); the "
                                 "file is truncated. Download it again.") from error
    except Exception as error:  # noqa: BLE001 -- damaged bytes can fail in any way
        raise Cifar10FormatError(f"{path}: not a CIFAR-10 python batch ({error}); the file "
                                 "is damaged or truncated. Download it again.") from error
    if not isinstance(batch, dict) or _field(batch, "data") is None \
            or _field(batch, "labels") is None:
        raise Cifar10FormatError(f"{path}: not a CIFAR-10 python batch (no data and labels "
                                 "entries). Download it again.")
    pixels = np.asarray(_field(batch, "data"))
    labels = np.asarray(_field(batch, "labels"))
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != PIXELS:
        raise Cifar10FormatError(f"{path}: data is {pixels.dtype} {pixels.shape}, expected "
                                 f"uint8 [N, {PIXELS}]; the file is damaged. Download it "
                                 "again.")
    if labels.shape != (len(pixels),):
        raise Cifar10FormatError(f"{path}: {len(pixels)} images but labels of shape "
                                 f"{labels.shape}; the file is damaged. Download it again.")
    return _planes_to_images(pixels), _check_labels(path, labels)


def parse_binary_batch(data: bytes, path: str) -> Split:
    """uint8 images [N, 32, 32, 3] and labels [N] from a binary batch's bytes.

    Args:
      data: the batch file's bytes.
      path: the file, for messages.

    Raises:
      Cifar10FormatError: the size is not a whole number of records (the file
        is truncated) or a label is not 0..9.
    """
    if not data or len(data) % RECORD:
        raise Cifar10FormatError(
            f"{path}: {len(data)} bytes is not a whole number of {RECORD}-byte records "
            "(1 label byte + 3,072 pixel bytes); the file is truncated or damaged. "
            "Download it again.")
    records = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    return _planes_to_images(records[:, 1:]), _check_labels(path, records[:, 0])


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise Cifar10FormatError(f"{path}: cannot be read ({error}).") from error


class _Source:
    """Where the batches are: a folder or an archive, in one of the two formats."""

    def __init__(self, path: str, binary: bool, archive: bool):
        self.path, self.binary, self.archive = path, binary, archive

    def member(self, batch: str) -> str:
        name = batch + ".bin" if self.binary else batch
        if self.archive:
            return f"{BINARY_DIR if self.binary else PYTHON_DIR}/{name}"
        return os.path.join(self.path, name)

    @property
    def parse(self) -> Callable[[bytes, str], Split]:
        return parse_binary_batch if self.binary else parse_python_batch

    def files(self) -> List[str]:
        """The files read, for the data's identity: the archive, or each batch."""
        return [self.path] if self.archive else [self.member(batch) for batch in BATCHES]

    def read(self) -> List[Split]:
        """Every batch, in BATCHES order."""
        if not self.archive:
            missing = [path for path in self.files() if not os.path.isfile(path)]
            if missing:
                raise FileNotFoundError(
                    f"CIFAR-10 batch {missing[0]} is missing ({len(missing)} of "
                    f"{len(BATCHES)} batch files missing from {self.path}). {HOW_TO_GET}")
            return [self.parse(_read(path), path) for path in self.files()]
        try:
            with tarfile.open(self.path, "r:gz") as archive:
                batches = []
                for batch in BATCHES:
                    name = self.member(batch)
                    try:
                        member = archive.extractfile(name)
                    except KeyError:
                        member = None
                    if member is None:
                        raise Cifar10FormatError(
                            f"{self.path}: the archive has no file {name}; it is not the "
                            f"CIFAR-10 archive or is damaged. {HOW_TO_GET}")
                    batches.append(self.parse(member.read(), f"{self.path}:{name}"))
                return batches
        except (tarfile.TarError, EOFError, OSError) as error:
            raise Cifar10FormatError(f"{self.path}: cannot be read as a tar.gz archive "
                                     f"({error}); the file is truncated or damaged. "
                                     "Download it again.") from error


def find_source(location: str) -> _Source:
    """The batches at `location`, in the order the module docstring gives.

    Args:
      location: the directory holding the data.

    Raises:
      FileNotFoundError: none of them is there; the message says what was
        looked for and how to get it.
    """
    candidates = [(os.path.join(location, PYTHON_DIR), False), (location, False),
                  (os.path.join(location, BINARY_DIR), True), (location, True)]
    for folder, binary in candidates:
        source = _Source(folder, binary, archive=False)
        if any(os.path.isfile(source.member(batch)) for batch in BATCHES):
            return source
    for archive, binary in ((PYTHON_ARCHIVE, False), (BINARY_ARCHIVE, True)):
        path = os.path.join(location, archive)
        if os.path.isfile(path):
            return _Source(path, binary, archive=True)
    raise FileNotFoundError(
        f"no CIFAR-10 data in {location!r}: looked for {PYTHON_DIR}/ (data_batch_1..5, "
        f"test_batch), {BINARY_DIR}/ (the same names + .bin), {PYTHON_ARCHIVE} and "
        f"{BINARY_ARCHIVE}. {HOW_TO_GET}")


def data_files(location: str) -> List[str]:
    """The files the reader reads at `location`, relative to it.

    They are the data's identity; the list is empty if there is no CIFAR-10 data there.

    Args:
      location: the directory holding the data.
    """
    try:
        source = find_source(location)
    except FileNotFoundError:
        return []
    return [os.path.relpath(path, location) for path in source.files() if os.path.isfile(path)]


def load(location: str) -> Tuple[Split, Split]:
    """Reads ((train images, labels), (test images, labels)) as uint8, images NHWC.

    Args:
      location: the directory holding the data (batches or the archive).

    Raises:
      FileNotFoundError: no data, or a batch file missing (named).
      Cifar10FormatError: a truncated or damaged batch (named).
    """
    batches = find_source(location).read()
    train = batches[:len(TRAIN_BATCHES)]
    train_x = np.concatenate([images for images, _ in train])
    train_y = np.concatenate([labels for _, labels in train])
    return (train_x, train_y), batches[-1]


def channel_statistics(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images.

    Per-channel mean and population standard deviation of uint8 NHWC images scaled
    to [0, 1], as float32 [3]; a constant channel gets standard deviation 1.

    Computed from each channel's histogram of the 256 byte values, which is exact
    and needs no float copy of the images.

    Args:
      images: uint8 images [N, height, width, 3].
    """
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[-1]):
        counts = np.bincount(images[..., channel].ravel(), minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        variance = counts @ np.square(values - mean) / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(variance) if variance > 0 else 1.0)
    return np.asarray(means, np.float32), np.asarray(stds, np.float32)


def _scale(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(uint8 images / 255 - mean) / std per channel, as float32."""
    scaled = images.astype(np.float32)
    # In place: the training set alone is 550 MB as float32.
    np.divide(scaled, 255.0, out=scaled)
    scaled -= mean
    scaled /= std
    return scaled


class DatasetCifar10(DatasetBase):
    """CIFAR-10 read from the official batches (python or binary format).

    Pixels are scaled to [0, 1]; with `normalize` each channel is then
    standardized, (x - mean) / std, with the mean and (population) standard
    deviation of that channel over every pixel of the training part only
    (after the validation split is held out), so nothing is learnt from the
    validation or test images. The statistics are kept in ``channel_mean``
    and ``channel_std``.

    Args:
      location: a directory as the module docstring describes.
      flatten: give each image as a vector of 3,072 values in (row, column,
        channel) order; otherwise 32x32x3 (NHWC).
      train_order_seed: seeds the order of training batches.
      train_batch_size: examples per training batch (60 in the paper).
      validation_size: examples held out from the end of the training set as
        the validation split (5,000 in the paper); 0 for none.
      normalize: standardize each channel; otherwise keep the [0, 1] pixels.

    Raises:
      FileNotFoundError, Cifar10FormatError: as ``load``.
      ValueError: validation_size leaves no training examples.
    """

    def __init__(self, location: str, flatten: bool = False,
                 train_order_seed: Optional[int] = None, train_batch_size: int = 60,
                 validation_size: int = 0, normalize: bool = True):
        (train_x, train_y), (test_x, test_y) = load(location)
        if not 0 <= int(validation_size) < len(train_x):
            raise ValueError(f"validation_size {validation_size} must be in [0, "
                             f"{len(train_x)}) for {len(train_x)} training examples.")
        cut = len(train_x) - int(validation_size)
        self.channel_mean = np.zeros(CHANNELS, np.float32)
        self.channel_std = np.ones(CHANNELS, np.float32)
        if normalize:
            self.channel_mean, self.channel_std = channel_statistics(train_x[:cut])
        # Without normalize the mean is 0 and the std 1, which change no bit.
        train_x, test_x = (_scale(images, self.channel_mean, self.channel_std)
                           for images in (train_x, test_x))
        if flatten:
            train_x, test_x = train_x.reshape(len(train_x), -1), test_x.reshape(len(test_x), -1)
        train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
        validate = (train_x[cut:], train_y[cut:]) if validation_size else None
        self.location = location
        super().__init__((train_x[:cut], train_y[:cut]), train_batch_size, (test_x, test_y),
                         validate=validate, train_order_seed=train_order_seed)
