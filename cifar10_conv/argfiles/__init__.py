"""Scripts that print one cifar10_conv runner flag line per run, for batch runs."""
