"""lottery_ticket: lottery ticket hypothesis experiments in TensorFlow 2.

The repository root is installed as the package ``lottery_ticket``; its
subpackages are ``foundations`` (models, datasets, training, pruning and the
experiment loop), ``datasets`` (concrete datasets), ``mnist_fc`` (LeNet-300-100
on MNIST) and ``analysis`` (reading results back, metrics and figures).
"""

__version__ = "0.1.0"
