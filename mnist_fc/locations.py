"""Default places for the MNIST data and for experiment results.

Both can be set with environment variables, and every runner takes them as
flags (--mnist_location, --output_dir / --experiment_root). The experiment root
holds the trial{N}/ directories of an experiment.
"""

import os

MNIST_LOCATION = os.environ.get(
    "LOTTERY_TICKET_MNIST", os.path.join(os.path.expanduser("~"), "lottery_ticket_data", "mnist"))
EXPERIMENT_ROOT = os.environ.get(
    "LOTTERY_TICKET_EXPERIMENTS",
    os.path.join(os.path.expanduser("~"), "lottery_ticket_experiments", "mnist_fc"))
EXPERIMENT_PATH = EXPERIMENT_ROOT  # the original codebase's name
