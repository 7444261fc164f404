"""Downloads a registered data set and verifies every file's checksum.

Each file is tried at each mirror in turn, checked against its published MD5,
and written atomically; files already present with the right checksum are
kept. ``base_url`` points at another mirror (a local copy, for instance). The
files, checksums and mirrors of each data set are in ``datasets.registry``.
"""

import hashlib
import logging
import os
import pathlib
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence

from lottery_ticket.datasets import registry
from lottery_ticket.foundations import save_restore

logger = logging.getLogger("lottery_ticket")


def mirrors(dataset: str) -> List[str]:
    """The public mirrors of a registered data set."""
    return list(registry.DATASETS.get(dataset).mirrors)


def checksums(dataset: str) -> Dict[str, str]:
    """file name -> published MD5 of a registered data set."""
    return dict(registry.DATASETS.get(dataset).files)


class DownloadError(RuntimeError):
    """No mirror gave a file with the right checksum."""


def md5(data: bytes) -> str:
    """Hex MD5 of bytes."""
    return hashlib.md5(data).hexdigest()


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
        if os.path.isdir(base):  # a plain local directory is a mirror too
            base = pathlib.Path(base).resolve().as_uri()
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


def download(location: str, dataset: str = "mnist", base_url: Optional[str] = None,
             timeout: float = 60.0) -> List[str]:
    """Downloads the files of a registered data set into `location`.

    Args:
      location: directory to write the files into (created if missing).
      dataset: a name in datasets.registry.DATASETS ('mnist', 'fashion_mnist').
      base_url: a mirror to use instead of the public ones: a URL or a local
        directory holding the files.
      timeout: seconds to wait for each connection.

    Returns:
      Paths of the files.

    Raises:
      ValueError: an unknown data set.
      DownloadError: a file could not be had intact from any mirror.
    """
    spec = registry.DATASETS.get(dataset)  # an unknown name lists the known ones
    urls = [base_url] if base_url else list(spec.mirrors)
    os.makedirs(location, exist_ok=True)
    written, failures = [], []
    for filename, expected in spec.files.items():
        path = os.path.join(location, filename)
        if os.path.isfile(path) and registry.file_md5(path) == expected:
            logger.info("%s is already present and intact.", path)
        else:
            try:
                download_file(filename, expected, urls, location, timeout)
            except DownloadError as error:  # go on: every missing file is named at once
                failures.append(str(error))
                continue
        written.append(path)
    if failures:
        raise DownloadError(f"{len(failures)} of {len(spec.files)} files could not be "
                            "downloaded:\n" + "\n".join(failures))
    spec.verify(location)
    return written

