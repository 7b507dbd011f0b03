"""digitrec: handwritten digit recognition on MNIST, from training to a web service."""

__version__ = "0.1.0"
