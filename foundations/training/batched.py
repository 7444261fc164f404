"""The batched forward of a population: one forward() over all members' rows.

A dense model's own ``forward`` runs once on all members' rows stacked
member-major ([K*batch, ...]), with ``ModelBase.overriding(matmuls=...)``
making each dense layer one batched matmul of [K, batch, in] rows with the
stacked [K, in, out] kernels (plus each member's bias). Whether a model
qualifies is decided once per architecture by a trial (`batched_reason`); see
`stacked` for how a population trains either way.
"""

import contextlib
import functools
import logging
from typing import Callable, Dict, Hashable, Iterator, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from lottery_ticket.foundations.model_base import ModelBase, bias_key
from lottery_ticket.foundations.training import cache as cache_lib
from lottery_ticket.foundations.training.members import weight_layout

logger = logging.getLogger("lottery_ticket")


def _member_matmul(inputs: tf.Tensor, kernel: tf.Tensor, bias: Optional[tf.Tensor],
                   size: int,
                   product: Optional[Callable[[tf.Tensor], tf.Tensor]] = None) -> tf.Tensor:
    """Member-major rows [K*batch, in] times each member's own kernel ([K, in,
    out]) plus its own bias ([K, out]): [K*batch, out]. `product`, if given,
    computes the rows times the kernels instead ([K*batch, in] -> [K, batch, out])."""
    if product is not None:
        outputs = product(inputs)
    else:
        outputs = tf.matmul(tf.reshape(inputs, [size, -1, inputs.shape[-1]]), kernel)
    if bias is not None:
        # Here rather than where dense_layer adds its bias, which would need the
        # bias repeated per row; dense_layer then adds the (zero) override.
        outputs = outputs + bias[:, tf.newaxis, :]
    return tf.reshape(outputs, [-1, kernel.shape[-1]])


def batched_forward(template: ModelBase, stacked: Mapping[str, tf.Tensor], inputs: tf.Tensor,
                     size: int, training: bool,
                     used: Optional[List[str]] = None,
                     products: Optional[Mapping[str, Callable[[tf.Tensor], tf.Tensor]]] = None
                     ) -> tf.Tensor:
    """template's forward() for K members at once, on member-major rows.

    Args:
      template: a built model whose forward() uses only dense layers (see
        batched_trial).
      stacked: weight key -> the members' effective values [K, ...].
      inputs: [K*batch, ...]: member k's examples are rows k*batch ... (k+1)*batch-1.
      size: K.
      training: passed to forward().
      used: if given, collects the name of each dense layer whose matmul ran.
      products: layer name -> a function computing that layer's rows times
        the members' kernels ([K*batch, in] -> [K, batch, out]) instead of a
        batched matmul (the sparse layers of stacked_sparse); the bias is
        added after it as for the others.

    Returns:
      forward()'s outputs for all members, member-major ([K*batch, ...]).
    """
    matmuls, overrides = {}, {}
    for name in template.layer_names:
        kernel = stacked[name]
        bias = stacked.get(bias_key(name))
        matmul = functools.partial(_member_matmul, kernel=kernel, bias=bias, size=size,
                                   product=(products or {}).get(name))
        if used is not None:
            matmul = functools.partial(_recording, matmul, name, used)
        matmuls[name] = matmul
        # The stacked kernel in place of the layer's own, which the matmul does not
        # read: the template's variables (and masks) stay out of the program.
        overrides[name] = kernel
        if bias is not None:
            overrides[bias_key(name)] = tf.zeros([], bias.dtype)
    with template.overriding(weights=overrides, matmuls=matmuls):
        return template(inputs, training=training)


def _recording(matmul: Callable[[tf.Tensor], tf.Tensor], name: str, used: List[str],
               inputs: tf.Tensor) -> tf.Tensor:
    used.append(name)
    return matmul(inputs)


# Members and rows of the trial that decides whether a model runs batched.
_TRIAL_MEMBERS, _TRIAL_ROWS = 3, 4


def batched_trial(template: ModelBase, example_shape: Sequence[int]) -> Optional[str]:
    """None if batched_forward computes `template`'s forward() exactly for every
    member, else why not.

    forward() may only use dense layers, elementwise functions and reshapes of
    single examples: each of its rows must depend on that row alone, through the
    dense layers' own matmuls. Dropout (per-member seeds) and convolutions
    (4-D kernels) are refused outright; otherwise a trial on random members and
    examples must use every dense layer and give, per member, what forward()
    gives for that member alone (in training and evaluation).
    """
    if template.dropout_seeds:
        return "dropout (each member draws its own patterns)"
    shapes = template.get_current_weights(include_biases=True)
    names = template.layer_names
    if not names:
        return "no dense layers"
    for name in names:
        if len(np.shape(shapes[name])) != 2:
            return f"layer {name!r} is not dense (kernel shape {np.shape(shapes[name])})"
    if set(shapes) - set(names) - {bias_key(name) for name in names}:
        return "weights that belong to no dense layer"
    rng = np.random.default_rng(0)
    members, rows = _TRIAL_MEMBERS, _TRIAL_ROWS
    # Scaled as initializers scale kernels, so that deep stacks stay in range.
    stacked = {key: (rng.standard_normal((members,) + np.shape(value))
                     / np.sqrt(np.shape(value)[0] if key in names else 1.0)).astype(np.float32)
               for key, value in shapes.items()}
    x = rng.standard_normal((members, rows) + tuple(example_shape)).astype(np.float32)
    try:
        with tf.init_scope():
            for training in (True, False):
                used: List[str] = []
                together = batched_forward(
                    template, {key: tf.constant(v) for key, v in stacked.items()},
                    tf.constant(x.reshape((members * rows,) + x.shape[2:])), members,
                    training, used).numpy()
                if set(used) != set(names):
                    return f"forward() skips the dense layers {sorted(set(names) - set(used))}"
                for k in range(members):
                    with template.overriding(weights={key: tf.constant(v[k])
                                                      for key, v in stacked.items()}):
                        alone = template(x[k], training=training).numpy()
                    if together.shape[0] != members * rows or alone.shape[0] != rows:
                        return "forward() does not keep one output row per example"
                    ours = together[k * rows:(k + 1) * rows]
                    if ours.shape != alone.shape or not np.allclose(ours, alone, rtol=1e-4,
                                                                   atol=1e-4):
                        return "forward() mixes examples or members"
    except Exception as error:  # pylint: disable=broad-except
        # Whatever the batched form cannot run is run per member.
        return f"the batched trial failed ({type(error).__name__}: {error})"
    return None


# Per architecture (engine key and example shape): why it cannot run batched, or None.
_BATCHED_REASONS: Dict[Hashable, Optional[str]] = {}
# Set by vectorized_only(): every architecture fails the batched trial.
_FORCED_REASON: List[str] = []


@contextlib.contextmanager
def vectorized_only(reason: str = "forced") -> Iterator[None]:
    """Within the block every population trains with tf.vectorized_map (for
    benchmarks and tests that compare the two paths); remembered reasons are
    forgotten on entry and exit."""
    _BATCHED_REASONS.clear()
    _FORCED_REASON.append(reason)
    try:
        yield
    finally:
        _FORCED_REASON.pop()
        _BATCHED_REASONS.clear()


def batched_reason(model: ModelBase, example_shape: Sequence[int]) -> Optional[str]:
    """Why a population of `model`'s architecture would train with
    tf.vectorized_map rather than as batched matmuls; None if it trains batched.

    Decided by batched_trial once per architecture in a process.

    Args:
      model: a built member (its weights are not changed).
      example_shape: the shape of one example, without the batch dimension.
    """
    if _FORCED_REASON:
        return _FORCED_REASON[-1]
    trace_key = cache_lib.trusted_trace_key(model)
    key = None
    if trace_key is not None:
        # What an engine key holds of the model: its class, trace key and the
        # functions a trace calls (one patched after a trial is another model).
        key = (type(model), trace_key, tuple(weight_layout(model)),
               cache_lib.traced_functions(model), tuple(int(d) for d in example_shape))
        if key in _BATCHED_REASONS:
            return _BATCHED_REASONS[key]
    reason = batched_trial(model, example_shape)
    if key is not None:
        _BATCHED_REASONS[key] = reason
    if reason is not None:
        logger.debug("%s populations train with tf.vectorized_map: %s",
                     type(model).__name__, reason)
    return reason
