"""Checkpoints: the model's config and output layout travel with its weights.

``load(save(model))`` rebuilds the same network from the file alone (asteroid's rule). A file
that is not one of ours, or whose weights do not fit its own config, is refused with one line.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ..errors import UserError
from ..fileio import write_bytes_atomic
from .config import architecture
from .model import ConvTasNet, build_model

FORMAT = "ensemble_synth.convtasnet"
VERSION = 1


def save_checkpoint(path: str | Path, model: ConvTasNet, config: dict, layout: dict, **extra) -> None:
    """Write ``path`` atomically: format tag, full config, layout, weights and ``extra`` entries."""
    payload = {"format": FORMAT, "version": VERSION, "config": config, "layout": layout,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, checked to be ours."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or truncated file
        raise UserError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not an ensemble_synth ConvTasNet checkpoint")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    payload["_path"] = str(path)
    return payload


def model_from_checkpoint(payload: dict) -> ConvTasNet:
    """Rebuild the network described by the checkpoint and load its weights."""
    config, layout = payload["config"], payload["layout"]
    model = build_model(config["model"], sources=len(layout["output_names"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise UserError(f"{payload.get('_path', 'checkpoint')}: weights do not fit the checkpoint's own config "
                        f"({architecture(config['model'])}): {first[0].strip()[:160]}") from None
    model.eval()
    return model
