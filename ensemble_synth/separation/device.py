"""Choosing the compute device."""

from __future__ import annotations

import torch

from ..errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without it is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}': CUDA is not available on this machine (use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"device '{name}': expected auto, cpu or cuda")
    return torch.device(name)
