"""synflow: Iterative Synaptic Flow Pruning (Tanaka et al. 2020), data-free.

Every weight is made ``|w|`` and the network is run on an all-ones input; R is the
sum of its outputs, the "synaptic flow" through all paths. A weight's score is
``|w| * dR/d|w|``, the flow through it. Pruning by it once collapses layers at
high sparsity much as magnitude does; the paper's point is to prune in many
rounds (``rounds``, default 100), rescoring the survivors after each, with the
exponential schedule: after round k of n the step keeps density d^(k/n) of its
weights, d the step's final density (PruningRule applies the schedule to any
score with rounds > 1).

Products of many ``|w|`` under- or overflow float32 (LeNet-300-100's R alone is
about 1e5 at init, a deep conv network's far more). Since R is homogeneous of
degree 1 in each layer's kernel (biases are 0 at initialization, ReLU and max
pooling are positively homogeneous), scaling layer l by c_l scales every score
by the same product of the c_l. The forward pass runs on kernels scaled so each
layer's outputs are about 1, and the scores are unscaled in float64 afterwards:
their order, within and across layers, is that of the unscaled computation.
"""

from typing import Any, Dict, Sequence

import numpy as np

from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score


def synaptic_flow(model: Any, input_shape: Sequence[int]) -> Dict[str, np.ndarray]:
    """``|w| * dR/d|w|`` of every kernel, on an all-ones input.

    ``|w| * dR/d|w|`` of a model that holds ``|weights|`` (masked), R the sum of its
    outputs on one all-ones example.

    Args:
      model: a model whose kernels are the nonnegative (scaled) weights.
      input_shape: the shape of one example (without the batch axis).

    Returns:
      layer -> float64 w * dR/dw of the kernel's shape (0 where pruned).
    """
    import tensorflow as tf  # Imported here so that configurations load fast.

    ones = tf.ones((1,) + tuple(int(d) for d in input_shape), tf.float32)
    if not model.built:
        model.build(ones.shape[1:])
    names = list(model.kernel_variables)
    kernels = [model.kernel_variables[name] for name in names]
    with tf.GradientTape() as tape:
        flow = tf.reduce_sum(model.forward(ones, training=False))
    gradients = tape.gradient(flow, kernels)
    return {name: np.asarray(kernel.numpy(), np.float64) * np.asarray(grad.numpy(), np.float64)
            for name, kernel, grad in zip(names, kernels, gradients)}


class SynFlow(Score):
    """SynFlow's score, ``|w| * dR/d|w|``, pruned in rounds.

    ``|w| * dR/d|w|`` of the weights being pruned (see the module docstring); low goes
    first. The rule prunes a step in `rounds` rounds, rescoring between them.

    Args:
      rounds: pruning rounds per step (the paper's 100); 1 scores once.
      weights: which weights: 'final' (the weights being pruned: the initial
        ones when pruning at initialization), 'initial' or 'rewind'.

    Raises:
      ValueError: rounds below 1.
    """
    settings = {"rounds": "synflow_rounds"}

    def __init__(self, rounds: int = 100, weights: str = "final"):
        if isinstance(rounds, bool) or int(rounds) < 1:
            raise ValueError(f"synflow rounds={rounds!r}: give a whole number >= 1 "
                             "(--synflow_rounds; the paper's is 100).")
        self.rounds, self.weights = int(rounds), str(weights)

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        # The data is read for the shape of one example only.
        context.require("model", "data")
        values = context.weights(self.weights)
        scaled, log_scale = {}, 0.0
        for name, mask in context.masks.items():
            flow = np.abs(np.asarray(values[name], np.float64)) * np.asarray(mask, np.float64)
            total = flow.sum()
            # Each output of the layer then carries a flow of about 1 per unit input.
            scale = np.shape(mask)[-1] / total if total > 0 else 1.0
            scaled[name] = (flow * scale).astype(np.float32)
            log_scale += np.log(scale)
        model = context.model_fn(scaled, context.masks)
        flows = synaptic_flow(model, context.dataset().example_shape)
        return {name: flows[name] * np.exp(-log_scale) for name in layers}

    def get_config(self) -> Dict[str, Any]:
        return {"rounds": self.rounds, "weights": self.weights}


WEIGHT_SCORES.register("synflow", SynFlow)
