"""Where the tests find their real data, fetched into a cache where it is not at hand.

The real-data tests read two folders: ``fashion-mnist/`` (the four Fashion-MNIST
files) and ``mnist-test/`` (MNIST's test images and labels and its training
labels; several tests rely on its training images being absent). They are
looked for, in order:

1. in ``$LOTTERY_TICKET_TEST_DATA`` when it is set (a missing folder there is
   a failure: the user named that place);
2. in ``../shared/data`` beside the repository;
3. unless ``$CI`` is set (a failure there), in a cache,
   ``$LOTTERY_TICKET_TEST_DATA_CACHE`` (default
   ``~/.cache/lottery_ticket/test-data``), fetched once by the project's own
   downloader from the data sets' public mirrors, or from
   ``$LOTTERY_TICKET_TEST_DATA_MIRROR`` (a URL serving ``fashion-mnist/`` and
   ``mnist-test/``). Every file is checked against its published MD5 and
   written atomically; a file with another checksum is a failure and is never
   written. Where no mirror answers within
   ``$LOTTERY_TICKET_TEST_DATA_TIMEOUT`` seconds (default 5), the tests skip,
   saying how to provide the data.
"""

import os
import socket
import threading
import urllib.parse
import urllib.request
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import pytest

from lottery_ticket.datasets import download, registry

DATA_VARIABLE = "LOTTERY_TICKET_TEST_DATA"
CACHE_VARIABLE = "LOTTERY_TICKET_TEST_DATA_CACHE"
MIRROR_VARIABLE = "LOTTERY_TICKET_TEST_DATA_MIRROR"
TIMEOUT_VARIABLE = "LOTTERY_TICKET_TEST_DATA_TIMEOUT"
DEFAULT_TIMEOUT = 5.0

# folder -> (registered data set, its files the tests read). The smallest file
# first: a mirror serving other bytes is found out before the large downloads.
FOLDERS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "fashion-mnist": ("fashion_mnist", ("t10k-labels-idx1-ubyte.gz",
                                        "train-labels-idx1-ubyte.gz",
                                        "t10k-images-idx3-ubyte.gz",
                                        "train-images-idx3-ubyte.gz")),
    "mnist-test": ("mnist", ("t10k-labels-idx1-ubyte.gz",
                             "train-labels-idx1-ubyte.gz",
                             "t10k-images-idx3-ubyte.gz")),
}

HOW_TO_PROVIDE = (f"To run these tests, connect to the internet, or set {DATA_VARIABLE} to "
                  "a folder holding fashion-mnist/ and mnist-test/ (the files of python -m "
                  "lottery_ticket.mnist_fc.download_data --dataset=fashion_mnist, and "
                  "MNIST's t10k-images, t10k-labels and train-labels), or "
                  f"{MIRROR_VARIABLE} to a URL serving them.")


class Unreachable(Exception):
    """No mirror could be reached, or none served a file (no damaged bytes)."""


def default_cache(environ: Mapping[str, str] = os.environ) -> str:
    """The cache folder where $LOTTERY_TICKET_TEST_DATA_CACHE is not set.

    Returns:
      $XDG_CACHE_HOME/lottery_ticket/test-data, else ~/.cache/lottery_ticket/test-data.
    """
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lottery_ticket", "test-data")


def _connects(host: str, port: int, timeout: float, answers: List[str]) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        answers.append(host)
    except OSError:
        pass


def reachable(urls: Sequence[str], timeout: float) -> List[str]:
    """The URLs whose host accepts a connection within `timeout` seconds.

    Name resolution has no timeout of its own (a resolver that gets no answer can
    take minutes), so every host is tried at once in a thread of its own and
    those not through by the deadline count as unreachable. Where urllib would
    go through a proxy (http_proxy, https_proxy), the proxy is tried instead.

    Args:
      urls: http(s) URLs; any other (file://, a local folder) counts as reachable.
      timeout: seconds to wait for all of them together.

    Returns:
      The reachable URLs, in their order.
    """
    answers: List[str] = []
    threads, probed = {}, {}
    proxies = urllib.request.getproxies()
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            continue
        if parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname):
            parts = urllib.parse.urlsplit(proxies[parts.scheme])  # urllib goes through it
        port = parts.port or (443 if parts.scheme == "https" else 80)
        probed[url] = parts.hostname
        thread = threading.Thread(target=_connects, args=(parts.hostname, port, timeout, answers),
                                  daemon=True)  # a hung lookup must not hold the tests up
        thread.start()
        threads[url] = thread
    for thread in threads.values():
        thread.join(timeout)
    return [url for url in urls if url not in probed or probed[url] in answers]


def fetch(folder: str, cache: str, mirror: Optional[str] = None,
          timeout: float = DEFAULT_TIMEOUT) -> str:
    """Makes `cache`/`folder` hold the folder's files, each with its published MD5.

    Files already there intact are kept (nothing is fetched when all are);
    the others are fetched with the project's downloader
    (datasets.download.download_file): checked, then written atomically.

    Args:
      folder: a key of FOLDERS ('fashion-mnist', 'mnist-test').
      cache: the cache folder (created if missing).
      mirror: a URL serving `folder`/FILE; None: the data set's public mirrors.
      timeout: seconds to wait for a connection (and for each read).

    Returns:
      The path of `cache`/`folder`.

    Raises:
      Unreachable: no mirror answered, or none served some file; nothing
        damaged was written.
      download.DownloadError: a mirror served a file with another checksum
        (never written); the message names the file, each URL and the fix.
      OSError: the cache cannot be written.
    """
    dataset, names = FOLDERS[folder]
    expected = download.checksums(dataset)
    location = os.path.join(cache, folder)
    missing = [name for name in names
               if not (os.path.isfile(os.path.join(location, name))
                       and registry.file_md5(os.path.join(location, name)) == expected[name])]
    if not missing:
        return location
    urls = ([mirror.rstrip("/") + "/" + folder + "/"] if mirror
            else download.mirrors(dataset))
    live = reachable(urls, timeout)
    if not live:
        raise Unreachable(f"no connection to {', '.join(urls)} within {timeout:g} s")
    for name in missing:
        try:
            download.download_file(name, expected[name], live, location, timeout)
        except download.DownloadError as error:
            if error.checksum_mismatches:
                raise
            lines = str(error).splitlines()  # "could not download F:", URL: why..., the fix
            raise Unreachable(" ".join(line.strip() for line in lines[:-1])) from error
    return location


def data_dir(folder: str, default_root: str,
             environ: Mapping[str, str] = os.environ) -> str:
    """The folder of real test data the fixtures give (see the module's docstring).

    Args:
      folder: a key of FOLDERS.
      default_root: where the data is when $LOTTERY_TICKET_TEST_DATA is not set
        (../shared/data beside the repository).
      environ: the environment to read the variables from.

    Returns:
      The path of the folder.

    Raises:
      pytest.fail.Exception: the folder is missing where $LOTTERY_TICKET_TEST_DATA
        points, or under CI; a mirror served a damaged file; the cache cannot be
        written.
      pytest.skip.Exception: it could not be fetched (offline).
    """
    if DATA_VARIABLE in environ:
        path = os.path.join(environ[DATA_VARIABLE], folder)
        if not os.path.isdir(path):
            pytest.fail(f"test data {path} is missing: set {DATA_VARIABLE} to the folder "
                        "holding fashion-mnist/ and mnist-test/, or unset it to have the "
                        "tests fetch them into a cache.")
        return path
    path = os.path.join(default_root, folder)
    if os.path.isdir(path):
        return path
    if environ.get("CI"):
        pytest.fail(f"test data {path} is missing: under CI the tests fetch nothing; set "
                    f"{DATA_VARIABLE} to the folder holding fashion-mnist/ and mnist-test/.")
    cache = environ.get(CACHE_VARIABLE) or default_cache(environ)
    text = environ.get(TIMEOUT_VARIABLE)
    try:
        timeout = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        pytest.fail(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds; set it to "
                    f"one (default {DEFAULT_TIMEOUT:g}) or unset it.")
    try:
        return fetch(folder, cache, environ.get(MIRROR_VARIABLE), timeout)
    except Unreachable as error:
        pytest.skip(f"test data {folder}/ is neither at {path} nor in the cache "
                    f"{cache}, and could not be fetched ({error}). {HOW_TO_PROVIDE}")
    except download.DownloadError as error:
        pytest.fail(f"{error}\nFor the tests: the cached copies live in {cache} "
                    f"({CACHE_VARIABLE}); point {MIRROR_VARIABLE} at a mirror serving the "
                    f"official files, or {DATA_VARIABLE} at a folder holding them.")
    except OSError as error:
        pytest.fail(f"cannot write the test data cache {cache} ({error}): set "
                    f"{CACHE_VARIABLE} to a folder you can write, or {DATA_VARIABLE} to a "
                    "folder holding fashion-mnist/ and mnist-test/.")
