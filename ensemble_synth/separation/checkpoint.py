"""Checkpoints: the model's config and output layout travel with its weights.

``load(save(model))`` rebuilds the same network from the file alone (asteroid's rule). A file
that is not one of ours, or whose weights do not fit its own config, is refused with one line.
The weights carry a sha256 (:func:`weights_sha256`), checked on reading: a damaged file is
refused rather than separating with flipped weights. Checkpoints written before the checksum
existed (no ``weights_sha256`` entry) still load.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from ..errors import UserError
from ..fileio import write_bytes_atomic
from .config import architecture
from .model import ConvTasNet, build_model

FORMAT = "ensemble_synth.convtasnet"
VERSION = 1
CHECKSUM_KEY = "weights_sha256"


def weights_sha256(state_dict: dict) -> str:
    """sha256 of a state dict: for each tensor in sorted key order, its name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state dict entry {key!r} is not a tensor")
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, model: ConvTasNet, config: dict, layout: dict, **extra) -> None:
    """Write ``path`` atomically: format tag, full config, layout, weights, their sha256 and ``extra`` entries."""
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": config, "layout": layout,
               "state_dict": state_dict, CHECKSUM_KEY: weights_sha256(state_dict), **extra}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _first_line(exc: BaseException, limit: int = 120) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's contents, checked to be ours and undamaged."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: not a readable checkpoint (the file is empty)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or truncated file
        raise UserError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not an ensemble_synth ConvTasNet checkpoint")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    _check_contents(path, payload)
    payload["_path"] = str(path)
    return payload


def _check_contents(path: Path, payload: dict) -> None:
    """The entries the loader relies on are there, of the right kinds, and the weights match their sha256."""
    expected = {"config": dict, "layout": dict, "state_dict": dict}
    for key, kind in expected.items():
        if not isinstance(payload.get(key), kind):
            raise UserError(f"{path}: damaged checkpoint (entry '{key}' is missing or not a {kind.__name__})")
    if not isinstance(payload["config"].get("model"), dict):
        raise UserError(f"{path}: damaged checkpoint (config has no [model] table)")
    names = payload["layout"].get("output_names")
    if not isinstance(names, list) or not names or not isinstance(payload["layout"].get("instruments"), list):
        raise UserError(f"{path}: damaged checkpoint (layout has no output names or instruments)")
    stored = payload.get(CHECKSUM_KEY)
    if stored is None:
        return  # written before checksums: nothing to compare with
    try:
        actual = weights_sha256(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise UserError(f"{path}: damaged checkpoint (weights unreadable: {_first_line(exc)})") from None
    if actual != stored:
        raise UserError(f"{path}: damaged checkpoint (the weights do not match their sha256; "
                        "the file was changed or corrupted after it was saved)")


def model_from_checkpoint(payload: dict) -> ConvTasNet:
    """Rebuild the network described by the checkpoint and load its weights."""
    config, layout = payload["config"], payload["layout"]
    where = payload.get("_path", "checkpoint")
    try:
        model = build_model(config["model"], sources=len(layout["output_names"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{where}: damaged checkpoint (its config does not build a model: {_first_line(exc)})") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise UserError(f"{where}: weights do not fit the checkpoint's own config "
                        f"({architecture(config['model'])}): {first[0].strip()[:160]}") from None
    model.eval()
    return model
