"""What the XLA setting ('auto', 'on', 'off') means for a run."""

import os
from typing import Any, Optional, Tuple

import tensorflow as tf

from lottery_ticket.foundations.model_base import ModelBase

XLA_CHOICES = ("auto", "on", "off")

# What 'auto' means where this variable is set to 'on' or 'off': for many short
# runs (a test suite, quick notebook trials) XLA's compile time outweighs its gain.
XLA_AUTO_VARIABLE = "LOTTERY_TICKET_XLA_AUTO"


def gpu_present() -> bool:
    """Whether TensorFlow sees a GPU."""
    return bool(tf.config.list_logical_devices("GPU"))


def resolve_xla(xla: Any, model: Optional[ModelBase] = None) -> Tuple[bool, bool]:
    """(training loop compiled with XLA, evaluation compiled with XLA) for a setting.

    'auto' compiles the training loop with XLA on a GPU, and on a CPU for a
    network without convolutions (1.1-1.4x faster per step for LeNet; XLA's CPU
    convolutions are many times slower than TensorFlow's), and evaluation only
    on a GPU (on a CPU the large-batch forward pass is faster in TensorFlow's
    own kernels); 'on' compiles both, 'off' neither. True and False mean 'on'
    and 'off'. `model` (built) decides 'auto' on a CPU; without it, 'auto'
    counts as a network without convolutions. The environment variable
    LOTTERY_TICKET_XLA_AUTO=on|off makes 'auto' mean that instead.

    Raises:
      ValueError: an unknown setting, or LOTTERY_TICKET_XLA_AUTO set to one.
    """
    if xla is True or xla is False:
        xla = "on" if xla else "off"
    if xla not in XLA_CHOICES:
        raise ValueError(f"xla is {xla!r}; it must be one of {', '.join(XLA_CHOICES)} "
                         "(auto: XLA for the training loop, and for evaluation on a GPU).")
    if xla == "auto" and os.environ.get(XLA_AUTO_VARIABLE, "auto") != "auto":
        forced = os.environ[XLA_AUTO_VARIABLE]
        if forced not in ("on", "off"):
            raise ValueError(f"{XLA_AUTO_VARIABLE} is {forced!r}; it must be auto, on or "
                             "off (what --xla=auto means in this environment).")
        return forced == "on", forced == "on"
    if xla == "auto":
        gpu = gpu_present()
        convolutional = model is not None and any(
            len(kernel.shape) > 2 for kernel in model.kernel_variables.values())
        return gpu or not convolutional, gpu
    return xla == "on", xla == "on"
