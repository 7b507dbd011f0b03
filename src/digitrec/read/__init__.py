"""Reading images, as predict, serve and batch do: imports no other wing, never TensorFlow."""
