"""Default places for the CIFAR-10 data and for this family's experiment results.

Set with the environment variables LOTTERY_TICKET_CIFAR10 and
LOTTERY_TICKET_CIFAR10_EXPERIMENTS; every runner also takes them as flags
(--data_location, --output_dir / --experiment_root).
"""

import os

_HOME = os.path.expanduser("~")
CIFAR10_LOCATION = os.environ.get(
    "LOTTERY_TICKET_CIFAR10", os.path.join(_HOME, "lottery_ticket_data", "cifar10"))
EXPERIMENT_ROOT = os.environ.get(
    "LOTTERY_TICKET_CIFAR10_EXPERIMENTS",
    os.path.join(_HOME, "lottery_ticket_experiments", "cifar10_conv"))
