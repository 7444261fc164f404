"""Scripts that print one cifar10_resnet runner flag line per run, for batch runs."""
