"""The interface between the training loop and what trains: an `Engine`.

An engine trains K >= 1 networks of one architecture together, each on its
own batches, and answers per member: a single run is K = 1
(`single.SingleEngine`), a population K members (`stacked.StackedEngine`).
The loop (`loop.train_members`) only speaks to this interface, so everything
around the compiled step (evaluation schedule, metrics, divergence,
snapshots, files) is the same code for both.
"""

import abc
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from lottery_ticket.foundations.model_base import ModelBase
from lottery_ticket.foundations.save_restore import Network


class Engine(abc.ABC):
    """Compiled training and evaluation of K networks; see the module docstring.

    Attributes:
      size: K, the number of members.
      in_use: whether a run is training with the engine now (see
        cache.EngineCache).
      overlaps: whether start_evaluation evaluates alongside the training that
        follows it (on a copy of the weights) rather than before returning.
    """

    size: int = 1
    in_use: bool = False
    overlaps: bool = False

    @abc.abstractmethod
    def train_steps(self, indices: np.ndarray, first_step: int) -> Tuple[np.ndarray, np.ndarray]:
        """One optimizer step per row of `indices`.

        Args:
          indices: int32 [steps, K, batch]: member k's training-set indices of
            each step (see schedule.batch_indices).
          first_step: the iteration of the first row (dropout patterns follow it).

        Returns:
          Per member, the mean (loss, accuracy) over those steps as computed
          before each update: float64 arrays [K].
        """

    @abc.abstractmethod
    def evaluate(self, split: str) -> Tuple[np.ndarray, np.ndarray]:
        """Per member, (loss, accuracy) over a whole non-training split, [K] each.

        Args:
          split: 'validation' or 'test' (or another split of the data set).
        """

    @abc.abstractmethod
    def finite(self) -> np.ndarray:
        """Per member, whether all its trained weights are finite: bool [K]."""

    @abc.abstractmethod
    def member_weights(self) -> List[Network]:
        """Per member, its effective kernels and biases (under model_base.bias_key)."""

    @abc.abstractmethod
    def finish(self, models: Sequence[ModelBase], iteration: int) -> None:
        """Copies the trained values into the members' models and releases the engine.

        The values are those training reached, also after an error; the engine is then free
        for the next run.

        Args:
          models: the members' models, in member order.
          iteration: the iteration training reached.
        """

    @abc.abstractmethod
    def xla_record(self) -> Dict[str, Any]:
        """What done.json records of the compilation ("xla")."""

    @abc.abstractmethod
    def speed_record(self) -> Dict[str, Any]:
        """What done.json records of the run's speed besides its total time."""

    def start_evaluation(self, splits: Sequence[str]
                         ) -> Callable[[], Dict[str, Tuple[np.ndarray, np.ndarray]]]:
        """Starts evaluating the members as they are now on `splits`.

        Args:
          splits: the non-training splits to evaluate ("test", "validate").

        Returns:
          A function to call (once, before training or evaluating further
          with an overlapping engine's next start_evaluation or
          restore_evaluated) that returns split -> evaluate(split)'s answer
          for the weights as they were here. This default evaluates before
          returning; an engine that `overlaps` evaluates a copy while the
          caller trains on.
        """
        results = {split: self.evaluate(split) for split in splits}
        return lambda: results

    def restore_evaluated(self) -> None:
        """Puts back the weights of the last start_evaluation.

        An overlapping engine's run that diverged at that boundary ends with them.

        Raises:
          NotImplementedError: the engine does not overlap evaluation.
        """
        raise NotImplementedError(f"{type(self).__name__} does not overlap evaluation")
