"""Generating a corpus: plan, skip what is done, render room groups in parallel, write.

Layout: ``corpus.toml``, ``manifest.csv`` and ``<split>/<track_id>/`` with ``mix.wav``,
``stems/<part>.wav``, ``metadata.json`` and optionally ``dry/`` and ``midi/``. Each track
folder is built under a temporary name and renamed when complete, so a killed run leaves
no half track and a rerun completes the corpus with identical bytes.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomli_w

from . import augment as augment_mod
from .corpus import plan, render_track, sample_track, scene_for_group, ensemble_for_group, track_id
from .corpus_preset import SPLITS, public, resolve_preset
from .errors import UserError
from .fileio import write_json_atomic, write_text_atomic, write_wav
from .versions import versions

MANIFEST_COLUMNS = (
    "track_id", "split", "path", "duration", "sample_rate", "channels", "ensemble",
    "parts", "instruments", "room", "rt60", "mics", "source",
)
TMP_PREFIX = ".tmp-"


def default_rir_cache() -> Path:
    root = os.environ.get("ENSEMBLE_SYNTH_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ensemble_synth"
    return Path(root) / "rirs"


@dataclass
class Summary:
    tracks: int
    rendered: int
    skipped: int
    audio_seconds: float
    wall_seconds: float
    out_dir: Path

    def line(self) -> str:
        rtf = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")
        return (
            f"{self.out_dir}: {self.tracks} tracks ({self.rendered} rendered, {self.skipped} already there), "
            f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s ({rtf:.1f}x real time)"
        )


# --- writing one track --------------------------------------------------------------------


def write_performed_midi(path: Path, notes: np.ndarray, program: int, sample_rate: int) -> None:
    """The performed notes of a part, at the times FluidSynth played them."""
    import pretty_midi

    from .synth import FLUID_BUFSIZE

    grid = FLUID_BUFSIZE / sample_rate
    midi = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=int(program))
    for start, end, pitch, velocity in notes:
        on = round(start / grid) * grid
        off = max(on + grid, round(end / grid) * grid)
        inst.notes.append(pretty_midi.Note(int(velocity), int(pitch), float(on), float(off)))
    midi.instruments.append(inst)
    buffer = io.BytesIO()
    midi.write(buffer)
    path.write_bytes(buffer.getvalue())


def write_track(rendered, track_dir: Path, write_dry: bool = False, write_midi: bool = False) -> dict:
    """Write a rendered track into ``track_dir`` atomically; returns its metadata."""
    sr = int(rendered.spec["sample_rate"])
    tmp = track_dir.parent / f"{TMP_PREFIX}{track_dir.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    try:
        write_wav(tmp / "mix.wav", rendered.mix, sr)
        for name, image in zip(rendered.part_names, rendered.images):
            write_wav(tmp / "stems" / f"{name}.wav", image, sr)
        if write_dry:
            (tmp / "dry").mkdir()
            for name, stem in zip(rendered.part_names, rendered.dry):
                write_wav(tmp / "dry" / f"{name}.wav", stem, sr)
        if write_midi:
            (tmp / "midi").mkdir()
            for part, notes in zip(rendered.spec["parts"], rendered.notes):
                write_performed_midi(tmp / "midi" / f"{part['name']}.mid", notes, part["program"], sr)
        meta = rendered.metadata()
        write_json_atomic(tmp / "metadata.json", meta)
        if track_dir.exists():  # a dry run's spec.json, or an older render: replace it whole
            old = track_dir.parent / f"{TMP_PREFIX}old-{track_dir.name}-{os.getpid()}"
            os.replace(track_dir, old)
            os.replace(tmp, track_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, track_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


# --- a room group: the unit of parallel work ----------------------------------------------


def _pin_threads() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run_group(preset: dict, seed: int, split: str, group: int, indices: list[int], out_dir: str,
              options: dict, augmentations=()) -> list[dict]:
    """Sample and render the tracks of one room group (they share a room); returns metadata."""
    from .repertoire import Repertoire
    from .rir_cache import RirCache

    out_dir = Path(out_dir)
    rep = preset["repertoire"]
    repertoire = Repertoire(rep["source"], rep["exclude"], rep["exclude_melodies"])
    layout, names = ensemble_for_group(preset, seed, split, group)
    scene = scene_for_group(preset, seed, split, group, layout, names)
    cache = RirCache(options["rir_cache"]) if options.get("rir_cache") else None
    results = []
    for index in indices:
        track = sample_track(preset, split, index, seed, repertoire, augmentations, scene=scene)
        track_dir = out_dir / split / track["track_id"]
        if options.get("dry_run"):
            track_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(track_dir / "spec.json", track)
            results.append(track)
            continue
        rendered = render_track(track, cache, augmentations)
        results.append(write_track(rendered, track_dir, options.get("dry"), options.get("midi")))
    return results


# --- the corpus ---------------------------------------------------------------------------


def corpus_record(preset: dict, seed: int, augmentations=()) -> dict:
    record = {"seed": int(seed), "preset": public(preset)}
    if augmentations:  # custom augmentations are part of what makes the corpus
        from .augment import reference

        record["augmentations"] = [f"{a.name}={reference(a)}" for a in augmentations]
    return record


def _check_or_write_corpus_toml(out_dir: Path, preset: dict, seed: int, augmentations=()) -> None:
    path = out_dir / "corpus.toml"
    record = corpus_record(preset, seed, augmentations)
    if path.exists():
        import tomllib

        try:
            existing = tomllib.loads(path.read_text())
        except Exception:
            raise UserError(f"{path}: unreadable corpus record; remove it or use another output directory") from None
        old = {k: existing[k] for k in ("seed", "preset", "augmentations") if k in existing}
        new = json.loads(json.dumps(record))
        if old != new:
            raise UserError(
                f"{out_dir}: holds a corpus of another preset or seed ({_first_difference(old, new)}; see {path}); "
                "use another output directory, or remove it to start over"
            )
        return
    if out_dir.exists() and any(p for p in out_dir.iterdir() if not p.name.startswith(".")):
        raise UserError(f"{out_dir}: exists, is not empty and is not a corpus; use another output directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    soundfonts = _soundfont_versions(preset)
    text = tomli_w.dumps({**record, "versions": {k: v or "" for k, v in versions().items()}, "soundfonts": soundfonts})
    write_text_atomic(path, text)


def _first_difference(old, new, where: str = "") -> str:
    """The first key whose value differs, e.g. "seed: 0 there, 1 here"."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
    return f"{where}: {old!r} there, {new!r} here"


def _soundfont_versions(preset: dict) -> dict:
    from .soundfonts import resolve

    value = preset["timbre"]["soundfont"]
    names = value if isinstance(value, list) else value.get("choice", [value]) if isinstance(value, dict) else [value]
    out = {}
    for name in names:
        font = resolve(name)
        out[font.name] = {"file": font.path.name, "sha256": font.sha256}
    return out


def _clean_temporaries(out_dir: Path) -> None:
    """Remove what a killed run left half-written: track folders, corpus.toml or manifest."""
    for leftover in out_dir.glob(".*.tmp*"):
        if leftover.is_file():
            leftover.unlink()
    for split in SPLITS:
        folder = out_dir / split
        if folder.is_dir():
            for tmp in folder.glob(f"{TMP_PREFIX}*"):
                shutil.rmtree(tmp, ignore_errors=True)


def manifest_row(meta: dict) -> dict:
    scene = meta.get("scene") or {}
    room = scene.get("room") or {}
    return {
        "track_id": meta["track_id"],
        "split": meta["split"],
        "path": f"{meta['split']}/{meta['track_id']}",
        "duration": f"{meta['rendered']['duration']:.3f}",
        "sample_rate": meta["sample_rate"],
        "channels": meta["rendered"]["channels"],
        "ensemble": meta["ensemble"],
        "parts": ";".join(p["name"] for p in meta["parts"]),
        "instruments": ";".join(p["instrument"] for p in meta["parts"]),
        "room": meta["room"]["room"],
        "rt60": f"{room['rt60']:.3f}" if room else "",
        "mics": meta["room"]["mics"],
        "source": meta["source"]["id"],
    }


def write_manifest(out_dir: Path, metas: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for meta in metas:
        writer.writerow(manifest_row(meta))
    write_text_atomic(out_dir / "manifest.csv", buffer.getvalue())


def _prewarm(preset: dict) -> None:
    """Import the heavy modules and list the repertoire in the parent, once: forked workers
    inherit them instead of each paying about a second before its first track."""
    import pyloudnorm  # noqa: F401

    from . import mix, synth  # noqa: F401  (pyroomacoustics, FluidSynth)
    from .repertoire import Repertoire

    rep = preset["repertoire"]
    Repertoire(rep["source"], rep["exclude"], rep["exclude_melodies"])


def _make_executor(jobs: int, scheduler: str | None, preset: dict):
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise UserError("--scheduler needs Dask: pip install 'ensemble_synth[dask]'") from None
        try:
            return Client(scheduler, timeout="10s"), True
        except Exception as exc:
            raise UserError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    if jobs <= 1:
        return None, False
    import multiprocessing

    _pin_threads()
    # fork: workers start at once and scripts need no __main__ guard; the parent holds no
    # synthesizer or room state, only the preset.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        _prewarm(preset)
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method)), True


def _completed(executor, futures):
    if hasattr(executor, "gather"):  # a dask distributed.Client
        from distributed import as_completed

        return as_completed(futures)
    return cf.as_completed(futures)


def generate(
    preset,
    out_dir,
    seed: int = 0,
    tracks: dict | None = None,
    jobs: int = 1,
    executor=None,
    scheduler: str | None = None,
    dry_run: bool = False,
    write_dry: bool | None = None,
    write_midi: bool | None = None,
    rir_cache: str | os.PathLike | None | bool = None,
    augmentations=(),
    progress: bool = True,
) -> Summary:
    """Generate (or complete) a corpus. ``tracks`` overrides the preset's split sizes.

    ``executor``: any ``concurrent.futures.Executor`` (or a Dask ``Client``); by default a
    process pool of ``jobs`` workers, or in-process for ``jobs=1``. ``rir_cache``: a folder,
    False for none, None for the user cache (``$ENSEMBLE_SYNTH_CACHE`` or ~/.cache).
    """
    start = time.perf_counter()
    preset = resolve_preset(preset)
    if tracks:
        for key, value in tracks.items():
            if value is not None:
                preset["tracks"][key] = int(value)
        resolve_preset(preset)  # re-validate
    out_dir = Path(out_dir)
    augmentations = augment_mod.check(augmentations)
    own_executor = None
    if executor is None and scheduler:  # connect (or fail) before anything is written
        executor, _ = _make_executor(jobs, scheduler, preset)
        own_executor = executor
    try:
        return _generate(preset, out_dir, seed, executor, jobs, dry_run, write_dry, write_midi, rir_cache,
                         augmentations, progress, start)
    finally:
        if own_executor is not None:
            own_executor.close()


def _close(executor) -> None:
    if hasattr(executor, "gather"):  # a dask distributed.Client
        executor.close()
    else:
        executor.shutdown(cancel_futures=True)


def _generate(preset, out_dir, seed, executor, jobs, dry_run, write_dry, write_midi, rir_cache, augmentations,
              progress, start) -> Summary:
    from tqdm import tqdm

    _check_or_write_corpus_toml(out_dir, preset, seed, augmentations)
    _clean_temporaries(out_dir)
    options = {
        "dry": preset["write"].get("dry", False) if write_dry is None else write_dry,
        "midi": preset["write"].get("midi", False) if write_midi is None else write_midi,
        "dry_run": dry_run,
        "rir_cache": None if rir_cache is False else str(rir_cache or default_rir_cache()),
    }
    planned = plan(preset)
    done = {(s, i) for s, i, _ in planned if (out_dir / s / track_id(preset, s, i) / "metadata.json").is_file()}
    groups: dict[tuple[str, int], list[int]] = {}
    for split, index, group in planned:
        if (split, index) not in done:
            groups.setdefault((split, group), []).append(index)
    for split in SPLITS:
        if preset["tracks"][split]:
            (out_dir / split).mkdir(parents=True, exist_ok=True)

    own_executor = None
    if executor is None and groups:
        executor, owned = _make_executor(jobs if len(groups) > 1 else 1, None, preset)
        own_executor = executor if owned else None
    bar = tqdm(total=len(planned), initial=len(done), unit="track", disable=not progress, desc="generate")
    rendered = 0
    try:
        if executor is None:
            for (split, group), indices in groups.items():
                run_group(preset, seed, split, group, indices, str(out_dir), options, augmentations)
                rendered += len(indices)
                bar.update(len(indices))
        else:
            futures = {
                executor.submit(run_group, preset, seed, split, group, indices, str(out_dir), options, augmentations): indices
                for (split, group), indices in groups.items()
            }
            for future in _completed(executor, list(futures)):
                future.result()
                rendered += len(futures[future])
                bar.update(len(futures[future]))
    finally:
        bar.close()
        if own_executor is not None:
            _close(own_executor)
    if dry_run:
        return Summary(len(planned), rendered, len(done), 0.0, time.perf_counter() - start, out_dir)
    metas = [json.loads((out_dir / s / track_id(preset, s, i) / "metadata.json").read_text()) for s, i, _ in planned]
    write_manifest(out_dir, metas)
    audio = sum(m["rendered"]["duration"] for m in metas if (m["split"], m["index"]) not in done)
    return Summary(len(planned), rendered, len(done), audio, time.perf_counter() - start, out_dir)
