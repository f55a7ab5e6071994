"""Dataset sources and tf.data streams."""
