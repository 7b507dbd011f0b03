"""Training, evaluating and exporting models with TensorFlow: imports read and synth."""
