"""Warm starts: `model.init_from` loads weights into the freshly built model before training.

    init_from: runs/digits/version_0/best           a dtrain checkpoint, run folder, RUN/best or RUN/last
    init_from: backbone.pth                         a state dict saved with torch.save (weights-only load)
    init_from: {path: model.safetensors, strict: false, prefix: {"backbone.": "layers.0."}}

Every file loads without running code: torch.load(weights_only=True), or safetensors (a format of
tensors alone; read when the safetensors package is installed: it is not a dependency, since the
other two formats cover dtrain's own files). `prefix` renames the file's keys to the model's (the
first prefix that matches); `strict: false` loads the tensors whose names match and leaves the rest
as initialised. Tensors whose shapes differ are a located error listing them, strict or not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_init_from", "read_state_dict"]

_LISTED = 6  # keys named in an error; the rest are counted


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (see the module's docstring); ValueError with a reason a user can act on."""
    from declarative.safe_load import UnreadableFile, load_weights_only
    from declarative.training.checkpoint import load_checkpoint

    file = Path(path)
    if file.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError("reading .safetensors files needs the safetensors package: pip install safetensors") \
                from None
        try:
            return load_file(str(file))
        except Exception as exc:  # safetensors raises its own error types for a bad header
            raise ValueError(f"not a readable .safetensors file ({exc})") from None
    if file.is_dir() or (not file.exists() and file.name in ("best", "last")):
        from declarative.inference.checkpoints import resolve_checkpoint

        return load_checkpoint(resolve_checkpoint(file))["state_dict"]
    try:
        loaded = load_weights_only(file)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except UnreadableFile as exc:
        raise ValueError(f"torch.load cannot read it with weights_only ({exc.reason})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a dtrain or Lightning checkpoint
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError("it holds no state dict (a dict of tensors, or a checkpoint with a 'state_dict')")
    return loaded


def _renamed(state: dict[str, torch.Tensor], prefix: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for old, new in prefix.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def load_init_from(spec, model: torch.nn.Module) -> str:
    """Load `spec.model.init_from` into `model`; returns a line saying what was loaded. Any problem is a
    located SpecError at model.init_from."""
    config: dict[str, Any] = spec.model.init_from
    where = ("model", "init_from")
    try:
        state = _renamed(read_state_dict(config["path"]), config["prefix"])
    except ValueError as exc:
        raise spec.error(where, f"{config['path']}: {exc}") from None
    own = model.state_dict()
    mismatched = [f"{k} {list(v.shape)} (model: {list(own[k].shape)})" for k, v in state.items()
                  if k in own and v.shape != own[k].shape]
    if mismatched:
        raise spec.error(where, f"{config['path']}: tensors of other shapes than the model's: {_listing(mismatched)}")
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if config["strict"] and (missing or unexpected):
        parts = ([f"the model's {_listing(missing)} not in the file"] if missing else []) + \
                ([f"the file's {_listing(unexpected)} not in the model"] if unexpected else [])
        raise spec.error(where, f"{config['path']}: keys differ — " + "; ".join(parts) +
                         " (map prefixes with prefix: {old: new}, or load what matches with strict: false)")
    matched = {k: v for k, v in state.items() if k in own}
    if not matched:
        raise spec.error(where, f"{config['path']}: none of its keys is one of the model's (the file has e.g. "
                                f"{_listing(list(state)[:3])}; the model {_listing(list(own)[:3])})")
    model.load_state_dict(matched, strict=False)
    return f"init_from: {len(matched)} of the model's {len(own)} tensors loaded from {config['path']}"
