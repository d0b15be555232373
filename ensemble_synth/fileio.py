"""Atomic output: files and directories appear whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import UserError


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_sibling(path)
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """Write audio shaped (samples,) or (channels, samples) atomically as WAV."""
    path = Path(path)
    audio = np.asarray(audio, dtype=np.float32)
    data = audio.T if audio.ndim == 2 else audio
    tmp = _tmp_sibling(path)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with sf.SoundFile(str(tmp), "w", int(sample_rate), channels, subtype=subtype, format="WAV") as f:
        _no_peak_chunk(f)
        f.write(data)
    os.replace(tmp, path)


_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _no_peak_chunk(f: sf.SoundFile) -> None:
    """libsndfile adds a PEAK chunk with a timestamp to float WAVs; leave it out (same bytes for same audio)."""
    sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV as float32 shaped (channels, samples)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr)


@contextlib.contextmanager
def atomic_directory(out_dir: str | os.PathLike, overwrite: bool = False):
    """Build a directory under a temporary name, rename it into place on success.

    On any exception the temporary directory is removed and nothing is left at
    ``out_dir``. An existing non-empty ``out_dir`` is refused unless ``overwrite``.
    """

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise UserError(f"{out_dir}: output directory exists and is not empty (use --overwrite to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
