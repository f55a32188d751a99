"""The spec pipeline's first stages: load with positions, override, validate, type."""
