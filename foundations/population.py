"""Where `train_population` used to live; kept so that existing code keeps working.

`train_population` is now in `trainer` beside `train` (both are one loop,
`training.loop.train_members`, over an engine); a population's engine is
`training.stacked` (how it trains: see that module's docstring), and the
checks of its members are in `training.members`.
"""

from lottery_ticket.foundations.trainer import PopulationDivergedError, train_population
from lottery_ticket.foundations.training.batched import batched_reason

__all__ = ["PopulationDivergedError", "batched_reason", "train_population"]
