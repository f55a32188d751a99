"""The engineering side: trainer loop, precision, devices, checkpoints, metrics."""
