"""Downloads MNIST or Fashion-MNIST and verifies every file's checksum.

    python -m lottery_ticket.mnist_fc.download_data --location=DIR [--dataset=fashion_mnist]

The generic downloader is ``lottery_ticket.datasets.download``; the files,
checksums and mirrors are in ``lottery_ticket.datasets.registry``.
"""

from typing import Dict, List, Optional

from lottery_ticket.cli import runners
# Re-exported: the downloader's functions under the family's module path.
from lottery_ticket.datasets.download import (  # noqa: F401
    DownloadError, checksums, download, download_file, md5, mirrors)
from lottery_ticket.mnist_fc import constants, locations

CHECKSUMS: Dict[str, Dict[str, str]] = {name: checksums(name)
                                        for name in ("mnist", "fashion_mnist")}
MIRRORS: Dict[str, List[str]] = {name: mirrors(name) for name in CHECKSUMS}
__all__ = ["CHECKSUMS", "COMMAND", "DownloadError", "MIRRORS", "checksums", "download",
           "download_file", "main", "md5", "mirrors"]

COMMAND, _ = runners.entry_point(constants.FAMILY, "download_data")


def main(location: str = locations.MNIST_LOCATION, dataset: str = "mnist",
         base_url: Optional[str] = None, timeout: float = 60.0) -> None:
    """Downloads `dataset` into `location` and prints the paths.

    Raises:
      DownloadError: a file cannot be had intact from any mirror.
    """
    runners.download_main(location, dataset, base_url, timeout)


if __name__ == "__main__":
    COMMAND.run()
