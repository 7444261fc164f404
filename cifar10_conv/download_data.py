"""Downloads CIFAR-10 (or MNIST, Fashion-MNIST) and verifies the published checksum.

    python -m lottery_ticket.cifar10_conv.download_data --location=DIR [--dataset=cifar10]

The archive is extracted into DIR (cifar-10-batches-py/), which --data_location
then names. The files, checksums and mirrors are in lottery_ticket.datasets.registry.
"""

from lottery_ticket.cifar10_conv import constants
from lottery_ticket.cli import runners

COMMAND, main = runners.entry_point(constants.FAMILY, "download_data")


if __name__ == "__main__":
    main()
