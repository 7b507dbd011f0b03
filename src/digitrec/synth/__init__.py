"""Generated digits, lines and pages with their ground truth: imports read, never TensorFlow."""
