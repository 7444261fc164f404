"""LeNet-300-100 on MNIST: the fully-connected experiments of the paper's section 2."""
