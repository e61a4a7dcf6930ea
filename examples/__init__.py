"""Bundled examples: the MNIST loader (mnist.py) and LeNet-300-100 (lenet300.py, train_lenet300.py)."""
