"""NaN and infinity in a data set: found before training, at the sample that holds them.

One NaN among the inputs (or a regression target) makes every loss after it NaN, and the
run trains to `loss nan` without a word. dtrain reads each split's float tensors once when
it loads them; `data.check_finite: false` trains on such data anyway.
"""

from __future__ import annotations

import torch

__all__ = ["first_non_finite", "non_finite_message"]

_CHUNK = 8192  # samples checked at a time: the mask costs a byte per value of the chunk, not of the data


def first_non_finite(tensor: torch.Tensor) -> tuple[int, float] | None:
    """The first sample (along dim 0) that holds a NaN or infinity, and that value; None when all are finite."""
    if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.dim() == 0:
        return None
    for start in range(0, len(tensor), _CHUNK):
        part = tensor[start:start + _CHUNK]
        bad = ~torch.isfinite(part).reshape(len(part), -1).all(dim=1)
        if bool(bad.any()):
            index = int(bad.nonzero()[0])
            values = part[index].flatten()
            return start + index, complex(values[~torch.isfinite(values)][0]).real if tensor.is_complex() \
                else float(values[~torch.isfinite(values)][0])
    return None


def non_finite_message(what: str, inputs: torch.Tensor, targets: torch.Tensor) -> str | None:
    """A message naming the first sample of `what` (a split) with a non-finite input or target; None if none."""
    from declarative.spec.safety import yaml_number

    for role, tensor in (("inputs", inputs), ("targets", targets)):
        found = first_non_finite(tensor)
        if found is not None:
            index, value = found
            return (f"{what}: sample {index} holds {yaml_number(value)} in its {role} (the first non-finite value); "
                    f"it would make the loss NaN — clean the data, or set data.check_finite: false to train on it "
                    f"anyway")
    return None
