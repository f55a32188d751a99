"""One process on one device (the default when a run uses one device)."""

from declarative.training.strategies.base import Strategy

__all__ = ["SingleDeviceStrategy"]


class SingleDeviceStrategy(Strategy):
    """One process, one device: no wrapper, no collectives."""

    name = "single_device"
