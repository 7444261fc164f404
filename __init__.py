"""lottery_ticket: lottery ticket hypothesis experiments in TensorFlow 2.

The repository root is installed as the package ``lottery_ticket``; its
subpackages are ``foundations`` (models, data sets, training engines, pruning
rules, run identity and the experiment loop), ``datasets`` (concrete data sets and
their downloads), ``experiments`` (typed configurations, registries and the glue that
runs a configured trial or control), ``cli`` (flags, runners, argfile batches on local
processes, Ray or Slurm), ``mnist_fc``, ``cifar10_conv`` and ``cifar10_resnet`` (the
LeNet-300-100, Conv-2/4/6 and ResNet-20/VGG-16 families: defaults and entry
points) and ``analysis`` (reading results
back, metrics, tables and figures).
"""

__version__ = "0.1.0"
