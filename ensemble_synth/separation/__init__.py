"""The bundled ConvTasNet separator: model, corpus data, trainer and inference.

Torch is an optional extra (``pip install 'ensemble_synth[train]'``). The torch-free parts
(``config``, ``data``) import without it; ``train``, ``load_separator`` and the model classes
are loaded on first use and raise :class:`UserError` with the install line when torch is missing.
"""

from __future__ import annotations

from ..errors import UserError

INSTALL_HINT = "pip install 'ensemble_synth[train]'"

_LAZY = {
    "train": ".trainer",
    "evaluate": ".trainer",
    "load_separator": ".inference",
    "Separator": ".inference",
    "ConvTasNet": ".model",
    "build_model": ".model",
    "count_parameters": ".model",
    "save_checkpoint": ".checkpoint",
    "read_checkpoint": ".checkpoint",
    "model_from_checkpoint": ".checkpoint",
}

__all__ = ["INSTALL_HINT", "require_torch", *_LAZY]


def require_torch():
    """Import torch, or fail with one line that says how to install it."""
    try:
        import torch
    except ImportError:
        raise UserError(f"PyTorch is not installed; the separator needs it: {INSTALL_HINT}") from None
    return torch


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_torch()
    import importlib

    module = importlib.import_module(_LAZY[name], __name__)
    return getattr(module, name)
