"""File-system faults are one line and exit 2, and leave nothing behind.

Unwritable output directories, output paths that are files (or directories, for a PNG),
a final rename that fails, click's own usage errors, a PNG that exists, and a corpus asked
for dry stems or MIDI it was made without. Every case runs the real command.

A directory is made unwritable with ``chattr +i`` (immutable: even root cannot write in
it) where that works, else with ``chmod 555`` when not running as root; a test that can do
neither is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tomli_w
from helpers import write_midi
from test_corpus import TINY, corpus_files

from ensemble_synth.cli import main
from ensemble_synth.corpus.generation import generate
from ensemble_synth.errors import UserError
from ensemble_synth.fileio import atomic_directory, write_bytes_atomic, write_wav

SCENE = ["--room", "dry_studio", "--layout", "violin_cello", "--mics", "ortf"]
FS = 16000


# --- making a directory unwritable ----------------------------------------------------------


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.mkdir()
    except OSError:
        return False
    probe.rmdir()
    return True


def _unlock(folder: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
    if folder.exists():
        os.chmod(folder, 0o755)


@pytest.fixture
def lock():
    """lock(folder, immutable=False): make a directory unwritable for the rest of the test."""
    locked: list[Path] = []

    def lock(folder: Path, immutable: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        locked.append(folder)
        chattr = shutil.which("chattr")
        if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True, check=False).returncode == 0:
            how = "chattr +i"
        elif immutable:
            pytest.skip(f"needs an immutable directory (chattr +i, as root, on a file system that has it): {folder}")
        else:
            os.chmod(folder, 0o555)
            how = "chmod 555"
        if _writable(folder):
            pytest.skip(f"cannot make {folder} unwritable here ({how} leaves it writable: running as root "
                        "on a file system without the immutable attribute)")
        return folder

    yield lock
    for folder in reversed(locked):
        _unlock(folder)


def listing(root: Path) -> list[str]:
    """Everything under root, hidden temporaries included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


# --- inputs of the commands ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    score = write_midi(root / "duo.mid", [("violin", 40, [(0.0, 0.4, 67)]), ("cello", 42, [(0.0, 0.4, 48)])])
    stems = root / "stems"
    stems.mkdir()
    t = np.arange(FS // 4) / FS
    for name, freq in (("1_violin", 440.0), ("2_cello", 130.8)):
        sf.write(stems / f"{name}.wav", (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), FS, subtype="FLOAT")
    preset = root / "tiny.toml"
    preset.write_text(tomli_w.dumps(TINY))
    return {"score": score, "stems": stems, "preset": preset, "rirs": root / "rirs"}


def command(name: str, inputs: dict[str, Path], out: Path) -> list[str]:
    return {
        "render": ["render", str(inputs["score"]), "-o", str(out)],
        "spatialize": ["spatialize", str(inputs["stems"]), "-o", str(out), *SCENE],
        "rir": ["rir", *SCENE, "--sample-rate", str(FS), "-o", str(out)],
        "generate": ["generate", "--preset", str(inputs["preset"]), "-o", str(out), "--rir-cache", str(inputs["rirs"]),
                     "--quiet", "--jobs", "1"],
        "plan": ["plan", *SCENE, "-o", str(out)],
    }[name]


DIRECTORY_COMMANDS = ["render", "spatialize", "rir", "generate"]


# --- 1. unwritable output directories -----------------------------------------------------------


@pytest.mark.parametrize("name", [*DIRECTORY_COMMANDS, "plan"])
def test_output_in_an_unwritable_directory_is_one_line(name, inputs, tmp_path, lock, capsys):
    locked = lock(tmp_path / "locked")
    out = locked / ("plan.png" if name == "plan" else "out")
    assert main(command(name, inputs, out)) == 2
    one_line_error(capsys, f"error: {locked}: directory is not writable", str(out))
    assert listing(tmp_path) == ["locked"]


@pytest.mark.parametrize("name", DIRECTORY_COMMANDS)
def test_output_deeper_in_an_unwritable_directory_is_one_line(name, inputs, tmp_path, lock, capsys):
    locked = lock(tmp_path / "locked")
    assert main(command(name, inputs, locked / "a" / "b")) == 2
    one_line_error(capsys, f"error: {locked}: directory is not writable")
    assert listing(tmp_path) == ["locked"]


@pytest.mark.parametrize("name", DIRECTORY_COMMANDS)
def test_an_unwritable_empty_output_directory_is_refused_and_nothing_leaks(name, inputs, tmp_path, lock, capsys):
    # The reported leak: render into an empty immutable directory left a hidden folder of stems beside it.
    out = lock(tmp_path / "out")
    assert main(command(name, inputs, out)) == 2
    one_line_error(capsys, f"error: {out}: output directory is not writable")
    assert listing(tmp_path) == ["out"]


def test_an_unwritable_rir_cache_is_refused_before_any_work(inputs, tmp_path, lock, capsys):
    cache = lock(tmp_path / "cache")
    args = command("generate", inputs, tmp_path / "corpus")
    args[args.index("--rir-cache") + 1] = str(cache)
    assert main(args) == 2
    one_line_error(capsys, f"error: {cache}: output directory is not writable", "--rir-cache")
    assert listing(tmp_path) == ["cache"]


# --- 2. atomic_directory: nothing left behind, the final rename included ------------------------


def test_a_failed_final_rename_leaves_no_temporary(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=f"^{out}: cannot put the output directory there"), atomic_directory(out) as tmp:
        (tmp / "stem.wav").write_bytes(b"x" * 1000)
        out.write_text("mine")  # something else took the name meanwhile: the rename fails
    assert listing(tmp_path) == ["out"] and out.read_text() == "mine"


def test_a_final_rename_onto_an_immutable_directory_leaves_no_temporary(tmp_path, lock):
    out = tmp_path / "out"
    with pytest.raises(UserError, match=f"^{out}: cannot put the output directory there"), atomic_directory(out) as tmp:
        (tmp / "stem.wav").write_bytes(b"x" * 1000)
        lock(out, immutable=True)  # after the check made on entry; a read-only one could be renamed over
    assert listing(tmp_path) == ["out"]


def test_a_failed_body_removes_the_temporary_and_the_parents_it_made(tmp_path):
    with pytest.raises(RuntimeError, match="render failed"), atomic_directory(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "half.wav").write_bytes(b"x")
        raise RuntimeError("render failed")
    assert listing(tmp_path) == []


def test_overwrite_replaces_a_non_empty_directory_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.wav").write_text("old")
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "new.wav").write_text("new")
    assert listing(tmp_path) == ["out", "out/new.wav"]


def test_atomic_files_leave_no_temporary_and_name_the_target(tmp_path, lock):
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        write_bytes_atomic(folder, b"data")  # the final replace fails
    assert info.value.filename == str(folder)
    locked = lock(tmp_path / "locked")
    with pytest.raises(PermissionError) as info:
        write_wav(locked / "x.wav", np.zeros(100, dtype=np.float32), FS)
    assert info.value.filename == str(locked / "x.wav")
    assert listing(tmp_path) == ["locked", "taken"]


def test_an_os_error_from_any_writer_is_one_line(tmp_path, lock, capsys):
    # `score --json` writes with the atomic writers and has no check of its own: the central handler.
    ref, est = tmp_path / "ref", tmp_path / "est"
    rng = np.random.default_rng(0)
    for folder in (ref, est):
        folder.mkdir()
        sf.write(folder / "violin.wav", rng.standard_normal(FS).astype(np.float32) * 0.1, FS, subtype="FLOAT")
    locked = lock(tmp_path / "locked")
    target = locked / "scores.json"
    assert main(["score", str(ref), str(est), "--sdr-only", "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {target}: ") and "Traceback" not in err, err
    assert listing(locked) == []


# --- 1 and 4. an output path that is a file -----------------------------------------------------


@pytest.mark.parametrize("name", DIRECTORY_COMMANDS)
def test_an_output_directory_that_is_a_file_is_one_line(name, inputs, tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.write_text("mine")
    assert main(command(name, inputs, existing)) == 2
    err = one_line_error(capsys, str(existing))
    if name in ("render", "generate"):  # click.Path(file_okay=False): click's check, in one line
        assert err == f"error: -o/--out: Directory '{existing}' is a file.\n"
    else:
        assert err == f"error: {existing}: exists and is not a directory\n"
    assert listing(tmp_path) == ["taken"] and existing.read_text() == "mine"


@pytest.mark.parametrize("name", DIRECTORY_COMMANDS)
def test_an_output_directory_under_a_file_is_one_line(name, inputs, tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.write_text("mine")
    assert main(command(name, inputs, existing / "out")) == 2
    one_line_error(capsys, f"error: {existing}: is a file, not a directory")
    assert listing(tmp_path) == ["taken"]


# --- 3. plan: an existing PNG, a directory ------------------------------------------------------


def test_plan_refuses_an_existing_png_without_overwrite(inputs, tmp_path, capsys):
    png = tmp_path / "plan.png"
    png.write_bytes(b"mine")
    assert main(command("plan", inputs, png)) == 2
    one_line_error(capsys, f"error: {png}: file exists", "--overwrite")
    assert png.read_bytes() == b"mine"

    assert main([*command("plan", inputs, png), "--overwrite"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert listing(tmp_path) == ["plan.png"]


def test_plan_refuses_a_directory_and_leaks_nothing(inputs, tmp_path, capsys):
    folder = tmp_path / "notes_dir"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert main([*command("plan", inputs, folder), *extra]) == 2
        one_line_error(capsys, f"error: {folder}: is a directory")
    assert listing(tmp_path) == ["notes_dir"]


def test_plan_in_a_missing_directory_is_one_line(inputs, tmp_path, capsys):
    assert main(command("plan", inputs, tmp_path / "nowhere" / "plan.png")) == 2
    one_line_error(capsys, f"error: {tmp_path / 'nowhere'}: directory not found")
    assert listing(tmp_path) == []


# --- 4. click's usage errors in one line --------------------------------------------------------


def test_an_argument_that_is_a_file_is_one_line(tmp_path, capsys):
    existing = tmp_path / "estimates"
    existing.write_text("not a folder")
    (tmp_path / "ref").mkdir()
    assert main(["score", str(tmp_path / "ref"), str(existing)]) == 2
    assert capsys.readouterr().err == f"error: EST_DIR: Directory '{existing}' is a file.\n"


@pytest.mark.parametrize("args, expected", [
    (["render"], "error: Missing argument 'SCORE'.\n"),
    (["rir", "--layout", "violin_cello", "-o", "x"], "error: Missing option '--room'.\n"),
    (["rir", *SCENE, "-o", "x", "--sample-rate", "fast"], "error: --sample-rate: 'fast' is not a valid integer.\n"),
    (["render", "x.mid", "-o", "x", "--format", "mp3"], "error: --format: 'mp3' is not one of 'float', 'pcm24'.\n"),
    (["plan", *SCENE, "-o", "x.png", "--overwrtie"], "error: No such option '--overwrtie'. Did you mean '--overwrite'?\n"),
    (["bogus"], "error: No such command 'bogus'.\n"),
])
def test_usage_errors_are_one_line(args, expected, capsys):
    assert main(args) == 2
    assert capsys.readouterr().err == expected


def test_help_is_unchanged(capsys):
    assert main(["plan", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: ensemble-synth plan [OPTIONS]\n\n  Draw the floor plan")
    assert "--overwrite" in out and "Replace an existing PNG file." in out
    assert main([]) == 2  # the bare group prints its help, as click does
    assert capsys.readouterr().err.startswith("Usage: ensemble-synth [OPTIONS] COMMAND [ARGS]...\n")


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "ensemble_synth", "bogus"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr == "error: No such command 'bogus'.\n"
    done = subprocess.run([sys.executable, "-m", "ensemble_synth", "plan", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Usage: ensemble-synth plan [OPTIONS]")


# --- a corpus asked for dry stems or MIDI it was made without -----------------------------------


@pytest.fixture(scope="module")
def plain_corpus(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two tracks, no dry stems, no MIDI; with its preset TOML and RIR cache."""
    root = tmp_path_factory.mktemp("plain")
    preset = {**TINY, "write": {"dry": False, "midi": False}, "tracks": {"train": 2, "valid": 0, "test": 0, "per_room": 2}}
    path = root / "plain.toml"
    path.write_text(tomli_w.dumps(preset))
    out, rirs = root / "corpus", root / "rirs"
    generate(path, out, seed=3, jobs=1, rir_cache=rirs, progress=False)
    return path, out, rirs


@pytest.mark.parametrize("flag, what", [("--dry", "dry stems"), ("--midi", "MIDI")])
def test_extras_a_corpus_was_made_without_are_refused(plain_corpus, flag, what, capsys):
    preset, out, rirs = plain_corpus
    before = corpus_files(out)
    args = ["generate", "--preset", str(preset), "-o", str(out), "--seed", "3", "--rir-cache", str(rirs), "--quiet"]
    assert main([*args, flag]) == 2
    one_line_error(capsys, f"error: {out}: this corpus was made without {what}", "new output directory")
    assert corpus_files(out) == before and not list(out.rglob(".*"))

    assert main(args) == 0  # as it was made: complete, nothing to do
    assert "0 rendered, 2 already there" in capsys.readouterr().out


def test_an_unfinished_corpus_with_dry_stems_is_not_completed_without(plain_corpus, tmp_path, capsys):
    preset, made, rirs = plain_corpus
    out = tmp_path / "corpus"
    shutil.copytree(made, out)
    # As a run with --dry killed before the end leaves it: dry/ in its tracks, no manifest yet.
    (out / "manifest.csv").unlink()
    for track in (out / "train").iterdir():
        (track / "dry").mkdir()
    args = ["generate", "--preset", str(preset), "-o", str(out), "--seed", "3", "--rir-cache", str(rirs), "--quiet"]
    assert main(args) == 2
    one_line_error(capsys, f"error: {out}: this corpus was made with dry stems; pass --dry")
    assert not (out / "manifest.csv").exists()
    assert main([*args, "--dry"]) == 0  # completed as it was begun
    assert "0 rendered, 2 already there" in capsys.readouterr().out
