"""The Accelerator base class: one kind of device, how many there are, and how `devices` picks them."""

from __future__ import annotations

from typing import ClassVar

import torch

from declarative.training.errors import MisconfigurationError

__all__ = ["Accelerator"]


class Accelerator:
    """One kind of device (as Lightning Fabric's accelerators): availability, count, and `devices` parsing.

    Subclasses set `name`, `device_type` and `backend` (the torch.distributed backend for several
    processes), and override `is_available` and `device_count`.
    """

    name: ClassVar[str] = ""
    device_type: ClassVar[str] = ""
    backend: ClassVar[str] = "gloo"

    @staticmethod
    def is_available() -> bool:
        raise NotImplementedError

    @staticmethod
    def device_count() -> int:
        raise NotImplementedError

    @classmethod
    def parse_devices(cls, devices: int | str | list[int]) -> list[int]:
        """The device indices this process group uses on each node, as Lightning reads `devices`:
        `auto` and -1 are every visible device, N the first N, a list those indices."""
        count = cls.device_count()
        if devices in ("auto", -1):
            ids = list(range(count))
        elif isinstance(devices, list):
            ids = list(devices)
            missing = [i for i in ids if not 0 <= i < count]
            if missing:
                raise MisconfigurationError(f"devices: {devices} asks for {cls.name} device(s) {missing}, but this "
                                            f"machine has {_count_text(count, cls.name)} (indices 0 to {count - 1})",
                                            ("trainer", "devices"))
            if len(set(ids)) != len(ids):
                raise MisconfigurationError(f"devices: {devices} lists a device twice", ("trainer", "devices"))
        else:
            ids = list(range(int(devices)))
            if int(devices) > count:
                raise MisconfigurationError(f"devices: {devices} asks for {devices} {cls.name} devices, but this "
                                            f"machine has {_count_text(count, cls.name)}", ("trainer", "devices"))
        if not ids:
            raise MisconfigurationError(f"devices: {devices} selects no {cls.name} device", ("trainer", "devices"))
        return ids

    def device(self, index: int) -> torch.device:
        """The torch device of local device `index`."""
        return torch.device(self.device_type, index)

    def setup_device(self, device: torch.device) -> None:
        """Make `device` this process's current device."""


def _count_text(count: int, name: str) -> str:
    return f"{count} {name} device" + ("" if count == 1 else "s")
