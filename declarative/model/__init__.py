"""Models from specs: the layer registry, shape inference and the model module."""
