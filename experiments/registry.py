"""The former name of experiments.components (models, optimizers, pruning rules by name)."""
from lottery_ticket.experiments.components import *  # noqa: F401,F403  (same objects)
