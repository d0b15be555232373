"""Atomic output: files and directories appear whole or not at all (WAV and 24-bit FLAC audio too).

Also the checks of an output path made before any work (:func:`check_output_dir`,
:func:`check_output_file`), and :func:`os_error_message`, the one-line form of an
``OSError`` that the command line prints.
"""

from __future__ import annotations

import contextlib
import errno
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


def os_error_message(exc: OSError) -> str:
    """``<file>: <problem>`` for an OSError (``<file> -> <other>: <problem>`` for a rename)."""
    problem = exc.strerror or str(exc)
    if exc.filename is not None and exc.filename2 is not None:
        return f"{_name(exc.filename)} -> {_name(exc.filename2)}: {problem}"
    if exc.filename is not None:
        return f"{_name(exc.filename)}: {problem}"
    return problem


def _name(filename) -> str:
    return os.fsdecode(filename) if isinstance(filename, (str, bytes, os.PathLike)) else str(filename)


def _existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (as anything: a file stops the walk too)."""
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_can_create_in(path: Path) -> None:
    """Creating ``path`` (and any missing parents) must be possible: refuse a file on the way
    or a directory that cannot be written (read-only, immutable, read-only file system)."""
    ancestor = _existing_ancestor(path.parent)
    if not ancestor.is_dir():
        raise UserError(f"{ancestor}: is a file, not a directory (on the way to {path})")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{ancestor}: directory is not writable (cannot create {path} there)")


def check_output_dir(path: str | os.PathLike, overwrite: bool = False, fill: bool = False) -> Path:
    """Refuse an output directory that cannot be used, before any work is done.

    Refused: an existing file (or a file on the way to it), a directory that cannot be
    written, an existing non-empty directory unless ``overwrite`` (it is replaced) or
    ``fill`` (the command adds to it, like ``generate`` completing a corpus).
    """
    path = Path(path)
    if os.path.lexists(path):
        if not path.is_dir():
            raise UserError(f"{path}: exists and is not a directory")
        if not fill and not overwrite and any(path.iterdir()):
            raise UserError(f"{path}: output directory exists and is not empty (use --overwrite to replace it)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UserError(f"{path}: output directory is not writable (read-only or immutable)")
        if fill:
            return path
    _check_can_create_in(path)
    return path


def check_output_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output file path that cannot be used: a directory, an existing file without
    ``overwrite``, a missing or unwritable directory to put it in."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give the path of a file to write")
    if os.path.lexists(path) and not overwrite:
        raise UserError(f"{path}: file exists (use --overwrite to replace it)")
    parent = path.parent
    if not parent.is_dir():
        if os.path.lexists(parent):
            raise UserError(f"{parent}: is a file, not a directory")
        raise UserError(f"{parent}: directory not found")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{parent}: directory is not writable (cannot create {path} there)")
    return path


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _as_target(exc: OSError, tmp: Path, path: Path) -> OSError:
    """The same error naming the file the user asked for, not our temporary beside it."""
    if exc.filename is not None and _name(exc.filename) == str(tmp):
        return OSError(exc.errno, exc.strerror, str(path))
    return exc


@contextlib.contextmanager
def _replacing(path: Path):
    """Yield a temporary sibling of ``path`` to write, then rename it onto ``path``; on any
    failure the temporary is removed, and an OSError names ``path``, not the temporary."""
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _as_target(exc, tmp, path) from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with _replacing(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> None:
    """Write audio shaped (samples,) or (channels, samples) atomically as WAV."""
    audio = np.asarray(audio, dtype=np.float32)
    _write_sound(path, audio.T if audio.ndim == 2 else audio, sample_rate, subtype, "WAV")


# 24-bit PCM: an integer q in [-2**23, 2**23 - 1] stands for q / 2**23 (libsndfile reads it so).
PCM24_SCALE = 2 ** 23
PCM24_LSB = 1.0 / PCM24_SCALE
FLAC_COMPRESSION_LEVEL = 5  # libFLAC's default (0 fastest .. 8 smallest)


def to_pcm24(audio: np.ndarray, where: str = "audio") -> np.ndarray:
    """Float samples rounded to the nearest 24-bit step: int32 values in [-2**23, 2**23 - 1].

    Each sample moves by at most half a step (2**-24). A sample at or beyond full scale (|x| >= 1,
    less the half step below +1) cannot be stored and is refused, naming ``where``.
    """
    q = np.rint(np.asarray(audio, dtype=np.float64) * PCM24_SCALE)
    if q.size and (q.max() > PCM24_SCALE - 1 or q.min() < -PCM24_SCALE):
        peak = float(np.abs(np.asarray(audio, dtype=np.float64)).max())
        raise UserError(f"{where}: peaks at {peak:.4f}, beyond 24-bit full scale (FLAC); "
                        "lower its level or write WAV (float)")
    return q.astype(np.int32)


def write_flac(path: str | os.PathLike, audio: np.ndarray, sample_rate: int,
               compression_level: int = FLAC_COMPRESSION_LEVEL) -> None:
    """Write audio shaped (samples,) or (channels, samples) atomically as 24-bit FLAC.

    ``audio``: float samples (rounded with :func:`to_pcm24`) or the int32 24-bit values
    :func:`to_pcm24` returns; these are stored exactly, and read back as ``q / 2**23``.
    Same samples, same bytes (libFLAC writes no date).
    """
    audio = np.asarray(audio)
    pcm = audio if audio.dtype == np.int32 else to_pcm24(audio, str(path))
    if pcm.size and (pcm.max() > PCM24_SCALE - 1 or pcm.min() < -PCM24_SCALE):
        raise UserError(f"{path}: 24-bit values out of range")
    data = pcm.T if pcm.ndim == 2 else pcm
    # libsndfile takes int32 at full 32-bit scale and keeps the top 24 bits: shift, exactly.
    _write_sound(path, np.ascontiguousarray(data) << 8, sample_rate, "PCM_24", "FLAC",
                 compression_level=compression_level / 8)


def _write_sound(path, data: np.ndarray, sample_rate: int, subtype: str, container: str, **options) -> None:
    """Write (samples,) or (samples, channels) ``data`` to ``path`` through a temporary sibling."""
    path = Path(path)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with _replacing(path) as tmp:
        open(tmp, "wb").close()  # libsndfile's own open fails with "System error": this names the problem
        try:
            with sf.SoundFile(str(tmp), "w", int(sample_rate), channels, subtype=subtype, format=container,
                              **options) as f:
                if container == "WAV":
                    _no_peak_chunk(f)
                f.write(data)
        except sf.LibsndfileError as exc:  # a failed write: a full disk, an I/O error
            raise OSError(errno.EIO, f"cannot write {container} ({exc.error_string})", str(path)) from None


_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _no_peak_chunk(f: sf.SoundFile) -> None:
    """libsndfile adds a PEAK chunk with a timestamp to float WAVs; leave it out (same bytes for same audio)."""
    sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV or FLAC (any format libsndfile reads) as float32 shaped (channels, samples)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(sr)


def _make_parents(path: Path) -> list[Path]:
    """mkdir -p of ``path``; returns the directories it created, outermost first."""
    missing = []
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except BaseException:
        _remove_dirs(created)
        raise
    return created


def _remove_dirs(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def atomic_directory(out_dir: str | os.PathLike, overwrite: bool = False):
    """Build a directory under a temporary name, rename it into place on success.

    On any exception, the final rename included, the temporary directory and any parent
    directories made for it are removed, and what was at ``out_dir`` is left as it was.
    An existing non-empty ``out_dir`` is refused unless ``overwrite``; it is then moved
    aside, replaced, and deleted only once the new one is in place.
    """

    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite=overwrite)
    created = _make_parents(out_dir.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        _remove_dirs(created)
        raise _placing_error(exc, out_dir) from None
    except BaseException:
        _remove_dirs(created)
        raise
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            _move_into_place(tmp, out_dir)
        except OSError as exc:
            raise _placing_error(exc, out_dir) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_dirs(created)
        raise


def _placing_error(exc: OSError, out_dir: Path) -> UserError:
    return UserError(f"{out_dir}: cannot put the output directory there ({exc.strerror or exc})")


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; a non-empty directory there is moved aside first and
    deleted once the new one is in place (put back if the rename fails)."""
    old = None
    if out_dir.is_dir() and not out_dir.is_symlink() and any(out_dir.iterdir()):
        old = out_dir.with_name(f".{out_dir.name}.old{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)  # an empty directory there is replaced by the rename itself
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
