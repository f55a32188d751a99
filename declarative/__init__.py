"""dtrain: declarative training for PyTorch.

A YAML spec names layers, data, loss, optimizer, scheduler, trainer settings and
callbacks; dtrain validates it against a JSON Schema, builds the ``nn.Module`` and
runs it. The import package is ``declarative``; the command is ``dtrain``.
"""

__version__ = "0.1.0"
