"""The old name of experiments.lockstep (lottery trials trained together), for old imports."""
from lottery_ticket.experiments.lockstep import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
