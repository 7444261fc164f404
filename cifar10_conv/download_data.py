"""Downloads CIFAR-10 (or MNIST, Fashion-MNIST) and verifies the published checksum.

    python -m lottery_ticket.cifar10_conv.download_data --location=DIR [--dataset=cifar10]

The archive is extracted into DIR (cifar-10-batches-py/), which --data_location
then names. The files, checksums and mirrors are in lottery_ticket.datasets.registry.
"""

from lottery_ticket.cifar10_conv import locations
from lottery_ticket.cli import runners

COMMAND = runners.download(locations.CIFAR10_LOCATION, default_dataset="cifar10",
                           program="python -m lottery_ticket.cifar10_conv.download_data")


def main(argv=None) -> None:
    """Runs the command line (default sys.argv); --help lists every flag."""
    COMMAND.run(argv)


if __name__ == "__main__":
    main()
