"""A corpus drawing from a choice of repertoire sources: [repertoire] source = {choice = [...]}.

Real music21 corpus files (no mocks). Track specs are sampled with ``sample_track``, which
renders nothing; the quartets are restricted to movements that parse in under a second.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import tomli_w
from helpers import write_midi

from ensemble_synth.cli import main
from ensemble_synth.corpus.generation import generate
from ensemble_synth.corpus.preset import resolve_preset
from ensemble_synth.corpus.sampling import repertoire_of, sample_track
from ensemble_synth.errors import UserError
from ensemble_synth.music.arrangement import load_piece
from ensemble_synth.music.repertoire import Repertoire, RepertoireChoice, music21_quartet_ids
from ensemble_synth.presets import load_preset

BACH, QUARTETS = "music21:bach", "music21:quartets"
MIX = {"choice": [BACH, QUARTETS], "weights": [1, 1]}
FAST_WORKS = ("haydn/opus1no1", "mozart/k80", "mozart/k156")
SLOW_WORKS = sorted({pid.rsplit("/", 1)[0] for pid in music21_quartet_ids()} - set(FAST_WORKS))


def _from(source: str, piece_id: str) -> bool:
    return piece_id.startswith("bach/") == (source == BACH)


def string_ensembles(**repertoire) -> dict:
    """The bundled preset (its file named in errors), quartets limited to the fast works."""
    preset = load_preset("corpora", "string_ensembles")
    preset["repertoire"] = {**preset["repertoire"], "exclude": list(SLOW_WORKS), **repertoire}
    return resolve_preset(preset)


def test_the_bundled_preset_is_a_string_quartet_on_chorales_and_quartets():
    preset = resolve_preset("string_ensembles")
    assert preset["repertoire"]["source"] == MIX
    assert preset["ensemble"]["layout"] == "string_quartet"
    assert preset["_source"].endswith("presets/corpora/string_ensembles.toml")
    repertoire = repertoire_of(preset)
    assert isinstance(repertoire, RepertoireChoice) and list(repertoire.repertoires) == [BACH, QUARTETS]


def test_the_source_is_drawn_per_track_deterministically_and_both_occur():
    preset = string_ensembles(exclude=[*SLOW_WORKS, "bwv255"])
    repertoire = repertoire_of(preset)
    specs = [sample_track(preset, "train", i, seed=5, repertoire=repertoire) for i in range(30)]
    again = [sample_track(preset, "train", i, seed=5) for i in range(30)]  # a repertoire of its own
    assert specs == again
    drawn = Counter(s["source"]["repertoire"] for s in specs)
    assert set(drawn) == {BACH, QUARTETS} and min(drawn.values()) >= 5, drawn
    for spec in specs:
        source = spec["source"]
        assert source["kind"] == "music21" and _from(source["repertoire"], source["id"]), source
        # the exclusions hold in both sources
        assert source["id"] != "bach/bwv255" and source["id"].rsplit("/", 1)[0] not in SLOW_WORKS
        assert load_piece(source).id == source["id"]  # what render-spec reads back
        assert [p["instrument"] for p in spec["parts"]] == ["violin", "violin", "viola", "cello"]
    other = [sample_track(preset, "train", i, seed=6, repertoire=repertoire)["source"]["repertoire"] for i in range(30)]
    assert other != [s["source"]["repertoire"] for s in specs]  # another seed, other draws


def test_a_choice_of_one_source_draws_what_that_source_alone_draws():
    """The source has a stream of its own: the piece, performance, timbre ... are drawn as before."""
    single = string_ensembles(source=BACH)
    choice = string_ensembles(source={"choice": [BACH]})
    for index in range(4):
        plain = sample_track(single, "train", index, seed=2)
        drawn = sample_track(choice, "train", index, seed=2)
        assert "repertoire" not in plain["source"]  # a single source records what it always did
        assert drawn["source"].pop("repertoire") == BACH
        assert drawn == plain


def test_the_list_form_and_weights():
    assert repertoire_of(string_ensembles(source=[QUARTETS, BACH])).repertoires.keys() == {QUARTETS, BACH}
    only_quartets = string_ensembles(source={"choice": [BACH, QUARTETS], "weights": [0, 1]})
    repertoire = repertoire_of(only_quartets)
    assert {sample_track(only_quartets, "train", i, seed=1, repertoire=repertoire)["source"]["repertoire"]
            for i in range(6)} == {QUARTETS}


def test_part_policy_fit_seats_a_trio_from_chorales_and_quartets():
    preset = string_ensembles(part_policy="fit")
    preset["ensemble"]["layout"] = "string_trio"
    repertoire = repertoire_of(preset)
    specs = [sample_track(preset, "train", i, seed=3, repertoire=repertoire) for i in range(16)]
    assert {s["source"]["repertoire"] for s in specs} == {BACH, QUARTETS}
    for spec in specs:
        assert [p["instrument"] for p in spec["parts"]] == ["violin", "viola", "cello"]
        if spec["source"]["repertoire"] == QUARTETS:
            assert [p["voice"] for p in spec["parts"]] == [0, 1, 3]  # the inner voice left out


def _one_line(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _preset_file(tmp_path, source, **extra) -> str:
    path = tmp_path / "mixed.toml"
    path.write_text(tomli_w.dumps({"name": "mixed", "repertoire": {"source": source, **extra},
                                   "ensemble": {"layout": "string_quartet"}, "room": {"enabled": False}}))
    return str(path)


@pytest.mark.parametrize("source, expected", [
    ({"choice": [BACH, "music21:quartet"]}, "'music21:quartet'"),
    ([BACH, "midi:/nonexistent/*.mid"], "/nonexistent/*.mid: no MIDI files found"),
    ({"choice": [BACH, 3]}, "expected a name, got 3"),
    ({"choice": [BACH, QUARTETS], "weights": [1]}, "'weights' must be 2 non-negative numbers"),
    ({"uniform": [BACH, QUARTETS]}, "'uniform' expects two numbers"),
    ({"integers": [1, 2]}, "expected a name, got 1"),
])
def test_a_bad_choice_is_one_line_naming_the_file(tmp_path, capsys, source, expected):
    path = _preset_file(tmp_path, source)
    with pytest.raises(UserError) as exc:
        resolve_preset(path)
    _one_line(exc, path, "[repertoire] key 'source'", expected)
    out = tmp_path / "out"
    assert main(["generate", "--preset", path, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1 and expected in err
    assert not out.exists()


def test_a_source_left_without_pieces_is_one_line_naming_the_file_and_source(tmp_path, capsys):
    composers = sorted({pid.split("/")[0] for pid in music21_quartet_ids()})
    path = _preset_file(tmp_path, MIX, exclude=composers)
    with pytest.raises(UserError) as exc:
        sample_track(path, "train", 0, seed=0)
    _one_line(exc, path, "[repertoire] key 'source'", QUARTETS, "no pieces left after exclusions")
    out = tmp_path / "out"
    assert main(["generate", "--preset", path, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1 and QUARTETS in err
    assert not out.exists()  # refused before corpus.toml is written


def test_a_source_that_cannot_seat_the_ensemble_is_one_line_naming_the_file_and_source(tmp_path, capsys):
    duets = tmp_path / "duets"
    duets.mkdir()
    write_midi(duets / "duet.mid", [("upper", 40, [(0.0, 1.0, 72), (1.0, 2.0, 74)]),
                                    ("lower", 42, [(0.0, 2.0, 48)])])
    source = f"midi:{duets}"
    path = _preset_file(tmp_path, {"choice": [QUARTETS, source]}, part_policy="skip",
                        exclude=list(SLOW_WORKS))
    with pytest.raises(UserError) as exc:
        for index in range(20):  # the duet is drawn for some track: it has two voices for four players
            sample_track(path, "train", index, seed=0)
    _one_line(exc, path, "[repertoire] key 'source'", f"'{source}'", "no piece fits a 4-part ensemble",
              "(1 of its 1 pieces tried)")
    # generate refuses it before anything is written
    out = tmp_path / "out"
    assert main(["generate", "--preset", path, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1
    assert (f"source '{source}' has no piece of 4 voices for the ensemble string_quartet (violin, violin, viola, "
            "cello) with part_policy 'skip'") in err
    assert not out.exists()
    # with part_policy 'fit' the same choice seats the quartet (duet voices doubled)
    fit = _preset_file(tmp_path, {"choice": [QUARTETS, source]}, part_policy="fit", exclude=list(SLOW_WORKS))
    drawn = {sample_track(fit, "train", i, seed=0)["source"]["repertoire"] for i in range(12)}
    assert drawn == {QUARTETS, source}


def test_exclusions_apply_to_every_source():
    repertoire = RepertoireChoice(MIX, exclude=["bwv255", "mozart/k80", "haydn"])
    bach, quartets = repertoire.repertoires[BACH], repertoire.repertoires[QUARTETS]
    assert "bwv255" not in bach.ids and len(bach.ids) == len(Repertoire(BACH).ids) - 1
    assert not any(pid.startswith(("mozart/k80/", "haydn/")) for pid in quartets.ids)
    assert "mozart/k156/movement1" in quartets.ids


TINY_MIX = {
    "name": "tiny_mix",
    "description": "test corpus: chorales and quartets",
    "sample_rate": 16000,
    "tracks": {"train": 4, "valid": 0, "test": 0, "per_room": 2},
    "repertoire": {"source": MIX, "part_policy": "skip", "excerpt_seconds": 2, "exclude": SLOW_WORKS},
    "ensemble": {"layout": "string_quartet"},
    "performance": {"tempo_bpm": [80, 100], "transpose": 0},
    "timbre": {"soundfont": "timgm6mb"},
    "room": {"enabled": False},
}


def test_a_tiny_mixed_corpus_names_each_tracks_source_and_re_renders(tmp_path, capsys):
    seed = next(s for s in range(20)
                if len({sample_track(TINY_MIX, "train", i, seed=s)["source"]["repertoire"] for i in range(4)}) == 2)
    out = tmp_path / "tiny_mix"
    summary = generate(TINY_MIX, out, seed=seed, jobs=1, progress=False)
    assert (summary.tracks, summary.rendered) == (4, 4)
    metas = [json.loads(p.read_text()) for p in sorted(out.glob("train/*/metadata.json"))]
    assert {m["source"]["repertoire"] for m in metas} == {BACH, QUARTETS}
    for meta in metas:
        assert _from(meta["source"]["repertoire"], meta["source"]["id"])
        assert all(n > 0 for n in meta["rendered"]["notes"])
    card = (out / "card.md").read_text()
    assert "a choice of `music21:bach` (" in card and "`music21:quartets` (" in card
    # render-spec rebuilds a track from its metadata alone
    folder = out / "train" / metas[-1]["track_id"]
    again = tmp_path / "again"
    assert main(["render-spec", str(folder / "metadata.json"), "-o", str(again)]) == 0
    capsys.readouterr()
    stems = sorted((folder / "stems").glob("*.wav"))
    assert len(stems) == 4
    for stem in stems:
        assert (again / "stems" / stem.name).read_bytes() == stem.read_bytes()
