"""grasp: Gradient Signal Preservation (Wang et al. 2020), a Hessian-gradient product.

The paper scores each weight S(-w) = -w * (H g), with g the loss's gradient and
H its Hessian. Removing w is the step -w on that coordinate, which changes the
gradient norm ||g||^2 by about 2 * (-w) * (H g) = 2 S(-w): the paper removes the
weights of the HIGHEST S(-w), whose removal reduces the gradient flow least (or
raises it). This library's selections remove the LOWEST scores, so the score
registered here is the paper's negated, w * (H g): its lowest are the paper's
highest, and the same weights go. (The paper also divides the logits by a
temperature of 200 when computing g and H g; this score uses the loss as it is.)
"""

from typing import Any, Dict, Iterable, Mapping

import numpy as np

from lottery_ticket.foundations.pruning.context import Batch
from lottery_ticket.foundations.pruning.scores import WEIGHT_SCORES, Score


def hessian_gradient_product(model: Any, batches: Iterable[Batch]) -> Dict[str, np.ndarray]:
    """The Hessian-gradient product H g over the kernels.

    H g over the kernels: g the mean gradient of the loss over `batches`, H the
    Hessian of that mean loss, by double backpropagation (tf.GradientTape).

    g is computed first and held fixed (a constant in the second pass), as the
    GraSP paper does: H g = d/dw (g(w) . stop_gradient(g)).

    Args:
      model: the network (built on its first batch if it is not yet); pruned
        weights get 0 (the forward pass multiplies by the mask).
      batches: (inputs, labels) pairs.

    Returns:
      layer -> float64 H g of the kernel's shape.

    Raises:
      ValueError: no batches.
    """
    import tensorflow as tf  # Imported here so that configurations load fast.

    batches = [(tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(y))
               for x, y in batches]
    if not batches:
        raise ValueError("hessian_gradient_product needs at least one batch (inputs, labels).")
    if not model.built:
        model.build(batches[0][0].shape[1:])
    names = list(model.kernel_variables)
    kernels = [model.kernel_variables[name] for name in names]
    mean_gradient = [tf.zeros_like(kernel) for kernel in kernels]
    for inputs, labels in batches:
        with tf.GradientTape() as tape:
            loss = model.loss(model.forward(inputs, training=False), labels)
        mean_gradient = [total + grad / len(batches) for total, grad in
                         zip(mean_gradient, tape.gradient(loss, kernels))]
    products = [tf.zeros_like(kernel) for kernel in kernels]
    for inputs, labels in batches:
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                loss = model.loss(model.forward(inputs, training=False), labels)
            gradients = inner.gradient(loss, kernels)
            dot = tf.add_n([tf.reduce_sum(grad * tf.stop_gradient(fixed))
                            for grad, fixed in zip(gradients, mean_gradient)])
        products = [total + hg / len(batches) for total, hg in
                    zip(products, outer.gradient(dot, kernels))]
    return {name: np.asarray(value.numpy(), np.float64) for name, value in zip(names, products)}


class Grasp(Score):
    """GraSP's score negated: w * (H g), averaged over training batches.

    w * (H g) of the weights being pruned, averaged over training batches: the
    GraSP paper's score negated, so that the lowest go (see the module docstring).

    Args:
      batches: how many training batches (from iteration 0, in training's order)
        g and H g are averaged over.
      weights: which weights the model holds: 'final' (the weights being pruned:
        the initial ones when pruning at initialization), 'initial' or 'rewind'.

    Raises:
      ValueError: `batches` is not a whole number >= 1.
    """

    def __init__(self, batches: int = 1, weights: str = "final"):
        if isinstance(batches, bool) or int(batches) < 1:
            raise ValueError(f"grasp batches={batches!r}: give a whole number >= 1.")
        self.batches, self.weights = int(batches), str(weights)

    def __call__(self, context, layers, seed) -> Dict[str, np.ndarray]:
        context.require("model", "data")
        values = context.weights(self.weights)
        products = hessian_gradient_product(context.model(self.weights),
                                            context.train_batches(self.batches))
        return {name: np.asarray(values[name], np.float64) * products[name]
                for name in layers}

    def get_config(self) -> Dict[str, Any]:
        return {"batches": self.batches, "weights": self.weights}


WEIGHT_SCORES.register("grasp", Grasp)
