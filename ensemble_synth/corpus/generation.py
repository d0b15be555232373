"""Generating a corpus: plan, skip what is done, render room groups in parallel, write.

The on-disk layout is :mod:`.format`'s. Each track folder is built under a temporary name
and renamed when complete, so a killed run leaves no half track and a rerun completes the
corpus with identical bytes. The room groups run in-process, in a local process pool, on any
executor the caller passes, or on a Dask cluster (``scheduler``): every worker renders from
the preset and seed alone and writes its tracks under ``out_dir`` (which, and the RIR cache,
must then be on storage every worker sees), so the bytes are the same wherever a group ran.
A finished run ends with the corpus card (``card.md``, ``card.png``; :mod:`.card`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import copy
import json
import logging
import multiprocessing
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..acoustics.rir_cache import RirCache
from ..errors import UserError
from ..fileio import write_json_atomic
from ..music.arrangement import fitting_piece
from ..music.repertoire import RepertoireChoice
from ..workers import die_with_parent
from . import augment as augment_mod
from . import format as corpus_format
from .card import write_card
from .preset import SPLITS, resolve_preset
from .rendering import render_track
from .sampling import ensemble_for_group, plan, repertoire_of, sample_track, scene_for_group, track_id


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


# --- a room group: the unit of parallel work ----------------------------------------------


def run_group(preset: dict, seed: int, split: str, group: int, indices: list[int], out_dir: str,
              options: dict, augmentations=()) -> list[dict]:
    """Sample and render the tracks of one room group (they share a room); returns metadata."""
    out_dir = Path(out_dir)
    repertoire = repertoire_of(preset)
    layout, names = ensemble_for_group(preset, seed, split, group)
    scene = scene_for_group(preset, seed, split, group, layout, names)
    cache = RirCache(options["rir_cache"]) if options.get("rir_cache") else None
    results = []
    for index in indices:
        track = sample_track(preset, split, index, seed, repertoire, augmentations, scene=scene)
        track_dir = out_dir / split / track["track_id"]
        if options.get("dry_run"):
            track_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(track_dir / corpus_format.DRY_RUN_SPEC, track)
            results.append(track)
            continue
        rendered = render_track(track, cache, augmentations)
        results.append(corpus_format.write_track(rendered, track_dir, options.get("dry"), options.get("midi"),
                                                 options.get("format", corpus_format.DEFAULT_FORMAT)))
    return results


# --- the corpus ---------------------------------------------------------------------------


def _prewarm(preset: dict) -> None:
    """Import the heavy modules and list the repertoire in the parent, once: forked workers
    inherit them instead of each paying about a second before its first track."""
    import fluidsynth  # noqa: F401
    import pyloudnorm  # noqa: F401

    repertoire_of(preset)


SCHEDULER_TIMEOUT_S = 5  # a scheduler that does not answer within this is an error, not a wait


def connect_scheduler(address: str, timeout_s: float = SCHEDULER_TIMEOUT_S):
    """A Dask ``distributed.Client`` of the scheduler at ``address``; one line and exit 2 when
    Dask is missing, the address is malformed or no scheduler answers within ``timeout_s``.

    The scheduler is asked who it is over a plain Dask connection first: a closed port, a
    host that does not answer, or something that is not a Dask scheduler fails there within
    the timeout, before a Client (whose failed start takes far longer to unwind) is made.
    """
    try:
        from distributed import Client
    except ImportError:
        raise UserError("--scheduler needs Dask: pip install 'ensemble_synth[dask]'") from None
    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        host, port = parse_host_port(location) if scheme in ("tcp", "tls") else (None, None)
    except (ValueError, TypeError) as exc:
        raise UserError(f"--scheduler {address}: not a scheduler address, expected tcp://HOST:PORT ({exc})") from None
    if host is not None:  # a closed port or an unknown host: say so at once, not after the timeout
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except TimeoutError:
            raise UserError(f"--scheduler {address}: no answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise UserError(f"--scheduler {address}: cannot reach it ({exc.strerror or exc})") from None

    async def identity():
        comm = await connect(address, timeout=timeout_s)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            await comm.close()

    # distributed logs every failed attempt; the one line below says it all.
    quiet = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.CRITICAL + 1)
    try:
        try:
            who = asyncio.run(asyncio.wait_for(identity(), timeout_s))
        except TimeoutError:
            raise UserError(f"--scheduler {address}: no Dask scheduler answered within {timeout_s:g} s") from None
        except Exception as exc:  # noqa: BLE001 - whatever answered there, it is one line
            why = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise UserError(f"--scheduler {address}: no Dask scheduler answered there ({why})") from None
        if not isinstance(who, dict) or who.get("type") != "Scheduler":
            raise UserError(f"--scheduler {address}: answered, but not as a Dask scheduler")
        try:
            return Client(address, timeout=f"{timeout_s}s", set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - distributed raises many kinds; one line
            why = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise UserError(f"--scheduler {address}: cannot connect a Dask client ({why})") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)


def _make_executor(jobs: int, scheduler: str | None, preset: dict):
    if scheduler:
        return connect_scheduler(scheduler), True
    if jobs <= 1:
        return None, False
    # The caller's environment is left as it is. BLAS threads are not pinned: forked workers
    # keep the parent's (its OpenBLAS read the variables at import), so they round as jobs=1 does.
    # fork: workers start at once and scripts need no __main__ guard; the parent holds no
    # synthesizer or room state, only the preset.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        _prewarm(preset)
    # Workers end with this process: a SIGKILLed run leaves none blocked on the queue.
    return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                                  initializer=die_with_parent, initargs=(os.getpid(),)), True


def _completed(executor, futures):
    if hasattr(executor, "gather"):  # a dask distributed.Client
        from distributed import as_completed

        return as_completed(futures, loop=executor.loop)  # this client's, not the default one
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
    audio_format: str | None = None,
    card: bool = True,
) -> Summary:
    """Generate (or complete) a corpus. ``tracks`` overrides the preset's split sizes.

    ``executor``: any ``concurrent.futures.Executor`` (or a Dask ``Client``); by default a
    process pool of ``jobs`` workers, or in-process for ``jobs=1``. ``scheduler``: the address
    of a Dask scheduler to run on instead. ``rir_cache``: a folder, False for none, None for
    the user cache (``$ENSEMBLE_SYNTH_CACHE`` or ~/.cache). ``audio_format``: ``"wav"`` or
    ``"flac"``, overriding the preset's ``[write] format``. ``card``: write ``card.md`` and
    ``card.png`` at the end of a (non-dry) run.
    """
    start = time.perf_counter()
    preset = resolve_preset(preset)
    if tracks or audio_format is not None:
        preset = copy.deepcopy(preset)  # the caller's preset stays as it was
    if tracks:
        for key, value in tracks.items():
            if value is not None:
                preset["tracks"][key] = int(value)
        resolve_preset(preset)  # re-validate
    if audio_format is not None:
        preset["write"]["format"] = corpus_format.check_audio_format(audio_format, "audio format")
    out_dir = Path(out_dir)
    augmentations = augment_mod.check(augmentations)
    own_executor = None
    if executor is None and scheduler:  # connect (or fail) before anything is written
        executor, _ = _make_executor(jobs, scheduler, preset)
        own_executor = executor
    try:
        return _generate(preset, out_dir, seed, executor, jobs, dry_run, write_dry, write_midi, rir_cache,
                         augmentations, progress, start, card)
    finally:
        if own_executor is not None:
            own_executor.close()


def _close(executor) -> None:
    if hasattr(executor, "gather"):  # a dask distributed.Client
        executor.close()
    else:
        executor.shutdown(cancel_futures=True)


def check_scenes(preset: dict, seed: int) -> dict[tuple[str, ...], str | dict]:
    """Sample every room group's ensemble and scene before anything is written: a room that
    cannot reach its RT60, or players and microphones that do not fit in it, fail here and
    leave no corpus behind (drawing a scene costs milliseconds; no impulse response is computed).
    Returns the line-ups drawn (instruments -> layout preset)."""
    source = preset.get("_source", "<preset>")
    lineups = {}
    for split, group in sorted({(split, group) for split, _, group in plan(preset)}):
        try:
            layout, names = ensemble_for_group(preset, seed, split, group)
            scene_for_group(preset, seed, split, group, layout, names)
        except UserError as exc:
            raise UserError(f"{source}: the scene of {split} room group {group}: {exc}") from None
        lineups.setdefault(tuple(names), layout)
    return lineups


def check_repertoire_fits(preset: dict, repertoire, lineups: dict[tuple[str, ...], str | dict]) -> None:
    """Every source of the repertoire has a piece for every line-up drawn (:func:`check_scenes`),
    checked before anything is written (the first piece that fits ends each search)."""
    sources = list(repertoire.repertoires.values()) if isinstance(repertoire, RepertoireChoice) else [repertoire]
    policy = preset["repertoire"]["part_policy"]
    for names, layout in lineups.items():
        for source in sources:
            if fitting_piece(source, list(names), policy) is None:
                label = layout if isinstance(layout, str) else layout.get("name", "inline")
                raise UserError(f"{preset.get('_source', '<preset>')}: [repertoire] source '{source.source}' has no "
                                f"piece of {len(names)} voices for the ensemble {label} ({', '.join(names)}) with "
                                f"part_policy '{policy}'; use part_policy = \"fit\" or another source")


def _generate(preset, out_dir, seed, executor, jobs, dry_run, write_dry, write_midi, rir_cache, augmentations,
              progress, start, card=True) -> Summary:
    # a source left without pieces fails here, before anything is written (lists are cached)
    repertoire = repertoire_of(preset)
    check_repertoire_fits(preset, repertoire, check_scenes(preset, seed))
    corpus_format.check_or_write_corpus_toml(out_dir, preset, seed, augmentations)
    corpus_format.clean_temporaries(out_dir)
    options = {
        "dry": preset["write"].get("dry", False) if write_dry is None else write_dry,
        "midi": preset["write"].get("midi", False) if write_midi is None else write_midi,
        "dry_run": dry_run,
        # Absolute: a Dask worker's working directory is not ours.
        "rir_cache": None if rir_cache is False else str(Path(rir_cache or default_rir_cache()).absolute()),
        "format": preset["write"].get("format", corpus_format.DEFAULT_FORMAT),
    }
    planned = plan(preset)
    done = {(s, i) for s, i, _ in planned if (out_dir / s / track_id(preset, s, i) / corpus_format.METADATA).is_file()}
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
                executor.submit(run_group, preset, seed, split, group, indices, str(out_dir.absolute()), options,
                                augmentations): indices
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
    metas = [json.loads((out_dir / s / track_id(preset, s, i) / corpus_format.METADATA).read_text()) for s, i, _ in planned]
    corpus_format.write_manifest(out_dir, metas)
    if card:
        write_card(out_dir)
    audio = sum(m["rendered"]["duration"] for m in metas if (m["split"], m["index"]) not in done)
    return Summary(len(planned), rendered, len(done), audio, time.perf_counter() - start, out_dir)
