"""Fuzzing `render` with MIDI files mutated from the Bach10 scores: no input gives a traceback.

A fixed seed mutates the three Bach10 chorales (byte flips, truncations, header fields such
as 1 tick per beat or SMPTE time division, extreme tempo events, very long notes, empty and
drum-only tracks, track names with control characters, broken chunk lengths, huge delta
times). Each file goes through the real CLI entry point, ``ensemble_synth.cli.main``, in
worker subprocesses under a 2 GB address-space limit (RLIMIT_AS), so that a render that
allocates a whole-piece buffer for hours of audio fails here instead of on a user's
machine. Every file must end with status 0 (stems written) or 2 (one ``error:`` line on
stderr naming the file, nothing left at the output path); anything else, a traceback,
a MemoryError or a crashed worker, fails the test.

``python benchmarks/fuzz_midi.py --files 3000`` runs the same with more files and prints
the counts. This module is also the worker: ``python tests/test_fuzz_midi.py --worker JOBS``.
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

SEED = 20240611
N_FILES = 300
WORKERS = 2
MEMORY_LIMIT = 2 * 1024**3  # bytes of address space per worker
# Cheap successes: the lowest sample rate FluidSynth takes, and limits well under the
# defaults (the chorales last 23-40 s, their longest notes a few seconds).
RENDER_OPTIONS = ["--sample-rate", "8000", "--max-minutes", "1", "--max-note-seconds", "20"]
LINEUP = "violin,clarinet,tenor_saxophone,bassoon"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from helpers import BACH10

# --- mutations --------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset of the chunk header, length field) of every chunk we can walk."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        length = struct.unpack(">L", data[pos + 4 : pos + 8])[0]
        out.append((pos, length))
        pos += 8 + length
    return out


def _mido(data: bytes):
    import mido

    return mido.MidiFile(file=io.BytesIO(data))


def _save(midi) -> bytes:
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def _abs_times(track):
    t = 0
    for msg in track:
        t += msg.time
        yield t, msg


def _rebuild(track, events):
    """A mido track from (absolute tick, message) pairs."""
    import mido

    out = mido.MidiTrack()
    last = 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        out.append(msg.copy(time=tick - last))
        last = tick
    return out


def m_byte_flips(data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b), "byte-flips"


def m_bit_flip(data, rng):
    b = bytearray(data)
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b), "bit-flip"


def m_truncate(data, rng):
    return data[: rng.randrange(len(data))], "truncate"


def m_header(data, rng):
    b = bytearray(data)
    field = rng.choice(["division", "division", "format", "ntracks"])
    if field == "division":
        value = rng.choice([1, 1, 2, 0, 3, 0x7FFF, 0x8000, 0xE728, 0xE250, 0xFFFF, rng.randrange(65536)])
        b[12:14] = value.to_bytes(2, "big")
    elif field == "format":
        b[8:10] = rng.choice([0, 2, 3, 0x8000, 0xFFFF]).to_bytes(2, "big")
    else:
        b[10:12] = rng.choice([0, 1, 2, 6, 100, 0xFFFF]).to_bytes(2, "big")
    return bytes(b), f"header-{field}"


def m_tempo_bytes(data, rng):
    """Overwrite the value of every set_tempo event (FF 51 03 tt tt tt)."""
    b = bytearray(data)
    value = rng.choice([0, 1, 2, 0xFFFFFF, 0x7FFFFF, 0x100000, rng.randrange(1 << 24)])
    i = b.find(b"\xff\x51\x03")
    while i >= 0 and i + 6 <= len(b):
        b[i + 3 : i + 6] = value.to_bytes(3, "big")
        i = b.find(b"\xff\x51\x03", i + 6)
    return bytes(b), "tempo-value"


def m_tempo_events(data, rng):
    """Extreme tempo changes in the middle of the piece, on the first or another track."""
    import mido

    midi = _mido(data)
    track_no = rng.choice([0, 0, rng.randrange(len(midi.tracks))])
    events = list(_abs_times(midi.tracks[track_no]))
    end = max(t for t, _ in events) or 960
    for _ in range(rng.randint(1, 4)):
        tempo = rng.choice([1, 10, 0xFFFFFF, 0xFFFFFF, 6_000_000, rng.randrange(1, 1 << 24)])
        events.append((rng.randrange(end + 1), mido.MetaMessage("set_tempo", tempo=tempo)))
    # mido writes the end of track after the last event
    events = [e for e in events if e[1].type != "end_of_track"]
    midi.tracks[track_no] = _rebuild(midi.tracks[track_no], events)
    return _save(midi), "tempo-events"


def m_long_note(data, rng):
    """Push a note-off (and all that follows it on its track) far later: a very long note."""
    midi = _mido(data)
    candidates = [(ti, mi) for ti, t in enumerate(midi.tracks) for mi, m in enumerate(t)
                  if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)]
    if not candidates:
        return m_byte_flips(data, rng)
    for _ in range(rng.randint(1, 4)):
        ti, mi = rng.choice(candidates)
        msg = midi.tracks[ti][mi]
        extra = rng.choice([2_000, 20_000, 200_000, 2_000_000, 9_000_000, 0x0FFFFFFF])
        midi.tracks[ti][mi] = msg.copy(time=msg.time + extra)
    return _save(midi), "long-note"


def m_stuck_note(data, rng):
    """Turn note-offs into text events: notes without an end."""
    import mido

    midi = _mido(data)
    for track in midi.tracks:
        for i, msg in enumerate(track):
            if (msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0)) and rng.random() < 0.3:
                track[i] = mido.MetaMessage("text", text="off", time=msg.time)
    return _save(midi), "stuck-notes"


def m_empty_tracks(data, rng):
    """Zero-length MTrk chunks, tracks with only an end-of-track, or every note removed."""
    kind = rng.choice(["zero-chunk", "eot-only", "no-notes"])
    if kind == "zero-chunk":
        chunks = _chunks(data)
        pos = rng.choice([c[0] for c in chunks[1:]] + [len(data)])
        b = data[:pos] + b"MTrk\x00\x00\x00\x00" + data[pos:]
        ntracks = struct.unpack(">H", b[10:12])[0] + 1
        return b[:10] + struct.pack(">H", ntracks) + b[12:], "empty-track-chunk"
    import mido

    midi = _mido(data)
    if kind == "eot-only":
        midi.tracks.insert(rng.randrange(len(midi.tracks) + 1), mido.MidiTrack([mido.MetaMessage("end_of_track")]))
    else:
        for ti, track in enumerate(midi.tracks):
            midi.tracks[ti] = _rebuild(track, [(t, m) for t, m in _abs_times(track) if m.type not in ("note_on", "note_off")])
    return _save(midi), f"empty-{kind}"


def m_drums(data, rng):
    """Move the channel messages of some or all tracks to channel 10 (drums)."""
    midi = _mido(data)
    everything = rng.random() < 0.5
    for track in midi.tracks:
        if everything or rng.random() < 0.5:
            for i, msg in enumerate(track):
                if hasattr(msg, "channel"):
                    track[i] = msg.copy(channel=9)
    return _save(midi), "drums-all" if everything else "drums-some"


NASTY_NAMES = ["Violin\nI", "Cello\r\nerror: fake", "\x1b[31mFlute\x1b[0m", "Oboe\x00", "Horn\tin F", "\x85\x9b",
               "", " ", "Clarinet in Bb\x07", "kazoo\n\n", "Viol" + "a" * 300]


def m_names_programs(data, rng):
    """Track names with control characters and random GM programs (some known instruments)."""
    import mido

    midi = _mido(data)
    for ti, track in enumerate(midi.tracks):
        events = [(t, m) for t, m in _abs_times(track) if m.type != "track_name"]
        events.insert(0, (0, mido.MetaMessage("track_name", name=rng.choice(NASTY_NAMES))))
        if rng.random() < 0.7:
            program = rng.choice([40, 41, 42, 43, 73, 71, 60, 56, 0, 1, 25, 118, rng.randrange(128)])
            events = [(t, m.copy(program=program) if m.type == "program_change" else m) for t, m in events]
        midi.tracks[ti] = _rebuild(track, events)
    return _save(midi), "names-programs"


def m_chunk_length(data, rng):
    b = bytearray(data)
    chunks = _chunks(data)
    pos, length = rng.choice(chunks)
    value = rng.choice([0, 1, length - 1, length + 1, length * 2, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << 32)])
    b[pos + 4 : pos + 8] = struct.pack(">L", value & 0xFFFFFFFF)
    return bytes(b), "chunk-length"


def m_huge_delta(data, rng):
    """Insert a text event with a huge delta time (up to the 4-byte variable-length maximum)."""
    chunks = _chunks(data)
    pos, length = rng.choice(chunks[1:] or chunks)
    delta = rng.choice([b"\xff\xff\xff\x7f", b"\x81\x80\x80\x00", b"\x8f\xff\xff\x7f", b"\xbf\x7f"])
    event = delta + b"\xff\x01\x01x"
    b = data[: pos + 8] + event + data[pos + 8 :]
    return b[: pos + 4] + struct.pack(">L", length + len(event)) + b[pos + 8 :], "huge-delta"


def m_junk(data, rng):
    junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    where = rng.choice(["append", "insert", "prepend"])
    if where == "append":
        return data + junk, "junk-append"
    if where == "prepend":
        return junk + data, "junk-prepend"
    i = rng.randrange(len(data))
    return data[:i] + junk + data[i:], "junk-insert"


def m_pitch_velocity(data, rng):
    """Extreme (still valid) pitches and velocities."""
    midi = _mido(data)
    for track in midi.tracks:
        for i, msg in enumerate(track):
            if msg.type in ("note_on", "note_off") and rng.random() < 0.3:
                track[i] = msg.copy(note=rng.choice([0, 1, 126, 127]))
    return _save(midi), "pitch-extremes"


MUTATIONS = [
    (m_byte_flips, 4), (m_bit_flip, 2), (m_truncate, 3), (m_header, 4), (m_tempo_bytes, 2), (m_tempo_events, 2),
    (m_long_note, 3), (m_stuck_note, 1), (m_empty_tracks, 2), (m_drums, 2), (m_names_programs, 3),
    (m_chunk_length, 2), (m_huge_delta, 1), (m_junk, 1), (m_pitch_velocity, 1),
]


def mutants(seed: int = SEED, count: int = N_FILES):
    """``count`` (name, bytes, options) triples, the same for the same seed."""
    rng = random.Random(seed)
    sources = sorted(BACH10.glob("*/*.mid"))
    originals = [p.read_bytes() for p in sources]
    funcs, weights = zip(*MUTATIONS)
    for i in range(count):
        k = rng.randrange(len(sources))
        data, labels = originals[k], []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            func = rng.choices(funcs, weights)[0]
            try:
                data, label = func(data, rng)
            except Exception:  # a structural mutation on bytes mido cannot read: flip bytes instead
                data, label = m_byte_flips(data or b"\x00", rng)
            labels.append(label)
            if not data:
                break
        options = list(RENDER_OPTIONS)
        if rng.random() < 0.6:
            options += ["--ensemble", LINEUP]
        yield f"{i:04d}-{sources[k].stem[:2]}-{'+'.join(labels)}.mid", data, options


# --- running ------------------------------------------------------------------------------


def _worker(jobs_file: str) -> None:
    """Render every job of ``jobs_file`` in this process, stderr (fd 2) captured per job."""
    import resource
    import shutil
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    from ensemble_synth.cli import main

    jobs = json.loads(Path(jobs_file).read_text())
    for job in jobs:
        out = Path(job["out"])
        err_path = out.parent / (out.name + ".stderr")
        print(json.dumps({"started": job["path"]}), flush=True)
        sys.stderr.flush()
        saved = os.dup(2)
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        status, trace = None, None
        t0 = time.perf_counter()
        try:
            status = main(["render", job["path"], "-o", str(out), *job["options"]])
        except BaseException:
            trace = traceback.format_exc()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            os.close(fd)
        seconds = time.perf_counter() - t0
        stderr = err_path.read_text(errors="replace")
        err_path.unlink()
        leftovers = sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))
        wrote = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
        if out.exists():
            shutil.rmtree(out)
        print(json.dumps({"path": job["path"], "status": status, "traceback": trace, "stderr": stderr,
                          "wrote": wrote, "leftovers": leftovers, "seconds": seconds,
                          "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def run_fuzz(workdir: Path, seed: int = SEED, count: int = N_FILES, workers: int = WORKERS) -> list[dict]:
    """Write the mutants under ``workdir`` and render them in ``workers`` subprocesses."""
    files = workdir / "midi"
    files.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name, data, options in mutants(seed, count):
        path = files / name
        path.write_bytes(data)
        jobs.append({"path": str(path), "out": str(workdir / "out" / name[:-4]), "options": options})
    (workdir / "out").mkdir(exist_ok=True)
    import ensemble_synth

    # the workers import the same ensemble_synth as this process
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(ensemble_synth.__file__).parents[1]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    procs = []
    for w in range(workers):
        jobs_file = workdir / f"jobs{w}.json"
        jobs_file.write_text(json.dumps(jobs[w::workers]))
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", str(jobs_file)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for w, proc in enumerate(procs):
        stdout, stderr = proc.communicate()
        records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        done = [r for r in records if "status" in r]
        results += done
        started = [r["started"] for r in records if "started" in r]
        if proc.returncode != 0 or len(done) != len(jobs[w::workers]):
            last = started[-1] if started else None
            results.append({"path": last, "status": None, "traceback": f"worker {w} exited with {proc.returncode}"
                            f" after {len(done)} of {len(jobs[w::workers])} files:\n{stderr[-3000:]}",
                            "stderr": "", "wrote": None, "leftovers": [], "seconds": 0.0, "maxrss_mb": 0.0})
    return results


def problems(results: list[dict]) -> list[str]:
    """What breaks the promise for bad input, one entry per file."""
    out = []
    for r in results:
        name = Path(r["path"]).name if r["path"] else "?"
        lines = r["stderr"].splitlines()
        if r["traceback"] is not None:
            out.append(f"{name}: traceback\n{r['traceback']}")
        elif r["status"] == 2:
            if len(lines) != 1 or not lines[0].startswith("error: "):
                out.append(f"{name}: exit 2 with stderr {r['stderr']!r} (want one 'error:' line)")
            elif name not in lines[0] and "--" not in lines[0]:
                out.append(f"{name}: the error names neither the file nor an option: {lines[0]}")
            elif "MemoryError" in lines[0]:
                out.append(f"{name}: ran out of memory under the {MEMORY_LIMIT >> 30} GB limit: {lines[0]}")
            if r["wrote"] is not None or r["leftovers"]:
                out.append(f"{name}: exit 2 but left {r['wrote']} {r['leftovers']}")
        elif r["status"] == 0:
            if not r["wrote"] or "metadata.json" not in r["wrote"]:
                out.append(f"{name}: exit 0 without stems: {r['wrote']}")
            bad = [line for line in lines if not line.startswith("warning: ")]
            if bad:
                out.append(f"{name}: exit 0 with stray stderr {bad!r}")
        else:
            out.append(f"{name}: exit status {r['status']}")
    return out


def counts(results: list[dict]) -> dict:
    return {
        "files": len(results),
        "clean_errors": sum(r["status"] == 2 and r["traceback"] is None for r in results),
        "successes": sum(r["status"] == 0 for r in results),
        "tracebacks": sum(r["traceback"] is not None for r in results),
    }


# --- the test -----------------------------------------------------------------------------


def test_mutated_bach10_scores_never_give_a_traceback(tmp_path):
    t0 = time.perf_counter()
    results = run_fuzz(tmp_path)
    elapsed = time.perf_counter() - t0
    found = problems(results)
    summary = counts(results)
    print(f"fuzz: {summary}, {elapsed:.1f} s")
    assert not found, f"{len(found)} of {summary['files']} files broke the promise:\n" + "\n".join(found[:20])
    assert summary["files"] == N_FILES and summary["tracebacks"] == 0
    # Both outcomes are exercised, and the limits did their part.
    assert summary["successes"] >= N_FILES // 10 and summary["clean_errors"] >= N_FILES // 3
    errors = [r["stderr"] for r in results if r["status"] == 2]
    assert any("per score" in e for e in errors) and any("per note" in e for e in errors)
    assert any("not a readable MIDI file" in e for e in errors)


def test_mutants_are_the_same_for_the_same_seed():
    a = [(n, d) for n, d, _ in mutants(SEED, 40)]
    assert a == [(n, d) for n, d, _ in mutants(SEED, 40)]
    assert a != [(n, d) for n, d, _ in mutants(SEED + 1, 40)]


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--worker":
    _worker(sys.argv[2])
