"""Downloads MNIST or Fashion-MNIST and verifies every file's checksum.

    python -m lottery_ticket.mnist_fc.download_data --location=DIR [--dataset=fashion_mnist]

Each file is tried at each mirror in turn, checked against its published MD5,
and written atomically; files already present with the right checksum are
kept. `--base_url` points at another mirror (a local copy, for instance).
"""

import hashlib
import logging
import os
import sys
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence

import fire

from lottery_ticket.datasets import dataset_mnist
from lottery_ticket.foundations import save_restore
from lottery_ticket.mnist_fc import locations

logger = logging.getLogger("lottery_ticket")

MIRRORS: Dict[str, List[str]] = {
    "mnist": [
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ],
    "fashion_mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}

# MD5 of the gzip files as published with each dataset.
CHECKSUMS: Dict[str, Dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


class DownloadError(RuntimeError):
    """No mirror gave a file with the right checksum."""


def md5(data: bytes) -> str:
    """Hex MD5 of bytes."""
    return hashlib.md5(data).hexdigest()


def _file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(filename: str, expected_md5: str, urls: Sequence[str], location: str,
                  timeout: float = 60.0) -> str:
    """Fetches one file from the first mirror that serves it intact.

    Returns:
      The path written.

    Raises:
      DownloadError: every URL failed or served bytes with another checksum;
        the message lists each URL and what went wrong.
    """
    target = os.path.join(location, filename)
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + filename
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        got = md5(data)
        if got != expected_md5:
            failures.append(f"{url}: checksum {got}, expected {expected_md5} "
                            f"({len(data)} bytes)")
            continue
        save_restore.write_bytes_atomically(target, data)
        logger.info("downloaded %s (%d bytes) from %s", filename, len(data), url)
        return target
    raise DownloadError(
        f"could not download {filename}:\n  " + "\n  ".join(failures) +
        f"\nPlace the file by hand at {target} (MD5 {expected_md5}), or pass "
        "--base_url=URL of a mirror that has it.")


def download(location: str = locations.MNIST_LOCATION, dataset: str = "mnist",
             base_url: Optional[str] = None, timeout: float = 60.0) -> List[str]:
    """Downloads the four IDX files of `dataset` into `location`.

    Args:
      location: directory to write the .gz files into (created if missing).
      dataset: 'mnist' or 'fashion_mnist'.
      base_url: a mirror to use instead of the public ones.
      timeout: seconds to wait for each connection.

    Returns:
      Paths of the four files.
    """
    if dataset not in CHECKSUMS:
        raise ValueError(f"dataset {dataset!r} is not one of {sorted(CHECKSUMS)}.")
    urls = [base_url] if base_url else MIRRORS[dataset]
    os.makedirs(location, exist_ok=True)
    written = []
    for filename, expected in CHECKSUMS[dataset].items():
        path = os.path.join(location, filename)
        if os.path.isfile(path) and _file_md5(path) == expected:
            logger.info("%s is already present and intact.", path)
        else:
            download_file(filename, expected, urls, location, timeout)
        written.append(path)
    # Reading the files back proves they parse as IDX before anyone trains on them.
    for images, labels in ((dataset_mnist.TRAIN_IMAGES, dataset_mnist.TRAIN_LABELS),
                           (dataset_mnist.TEST_IMAGES, dataset_mnist.TEST_LABELS)):
        dataset_mnist.load_split(location, images, labels)
    return written


def main(location: str = locations.MNIST_LOCATION, dataset: str = "mnist",
         base_url: Optional[str] = None, timeout: float = 60.0) -> None:
    """Command line: download, then print where the files are."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = download(location, dataset, base_url, timeout)
    except DownloadError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    print("\n".join(paths))


if __name__ == "__main__":
    fire.Fire(main)
