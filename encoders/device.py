"""Which compute devices the project runs on: the one check for `--device` (encoding and training)."""

from __future__ import annotations

from encoders.errors import DeviceError

DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps")


def check_device_name(device: str) -> str:
    """`cpu`, `cuda`, `cuda:N` or `mps`; DeviceError otherwise. Imports no torch."""
    kind, sep, index = str(device).partition(":")
    if kind not in DEVICES or (sep and not (kind == "cuda" and index.isdigit())):
        raise DeviceError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)} (or cuda:N, e.g. cuda:1)")
    return device


def require_device(device: str):
    """The torch.device for `device`, refused (DeviceError) when this machine does not have it."""
    import torch

    kind = check_device_name(device).partition(":")[0]
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available[kind]:
        raise DeviceError(f"device {device!r} requested but it is not available here; use --device cpu")
    return torch.device(device)
