"""Command lines: generated flags, one error contract, runners, argfiles and batches.

Nothing in ``foundations``, ``datasets`` or ``experiments`` imports this package;
each family's entry points (``mnist_fc/runners``, ``mnist_fc/argfiles``) are a few
lines that hand their family's defaults to the generic commands here.
"""
