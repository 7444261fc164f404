"""Command-line (Fire) entry points for the mnist_fc experiments."""
