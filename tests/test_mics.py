"""Microphone setups: inter-channel delays, spots, panning, the mix-down recipe, mono."""

import numpy as np
import pytest

from ensemble_synth.acoustics.capture import composite_rirs
from ensemble_synth.acoustics.rir_simulation import simulate_rirs
from ensemble_synth.acoustics.scene import sample_scene
from ensemble_synth.errors import UserError

FS = 16000
C = 343.0


def _onset(h: np.ndarray) -> int:
    return int(np.argmax(np.abs(h)))


def _scene(mics, layout="violin_cello", instruments=("violin", "cello"), room="chamber_hall", seed=0):
    return sample_scene(room, layout, mics, list(instruments), np.random.default_rng(seed))


def test_ab_pair_shows_the_expected_inter_channel_delay():
    scene = _scene("ab")
    rirs = simulate_rirs(scene, FS)
    left, right = (np.array(m.position) for m in scene.mics)
    for s, player in enumerate(scene.players):
        src = np.array(player.position)
        expected = (np.linalg.norm(src - left) - np.linalg.norm(src - right)) / C * FS
        measured = _onset(rirs[s, 0]) - _onset(rirs[s, 1])
        assert abs(measured - expected) <= 1.0
        assert abs(expected) > 2.0  # the players sit off-centre: a real delay to find


def test_xy_pair_shows_no_inter_channel_delay_but_a_level_difference():
    scene = _scene("xy")
    rirs = simulate_rirs(scene, FS)
    for s in range(len(scene.players)):
        assert _onset(rirs[s, 0]) == _onset(rirs[s, 1])
    # The violin (audience left) is louder in the left-pointing cardioid, the cello in the right one.
    direct = np.abs(rirs).max(axis=-1)
    assert direct[0, 0] > direct[0, 1] and direct[1, 1] > direct[1, 0]


def test_spot_microphone_hears_its_own_player_loudest():
    instruments = ["violin", "violin", "viola", "cello"]
    scene = _scene("decca_tree_spots", layout="string_quartet", instruments=instruments)
    rirs = simulate_rirs(scene, FS)
    spot_index = {m.name: i for i, m in enumerate(scene.mics)}
    for s, player in enumerate(scene.players):
        m = spot_index[f"spot_{player.name}"]
        energy = (rirs[:, m, : int(0.02 * FS)] ** 2).sum(-1)  # direct sound and first reflections
        assert np.argmax(energy) == s
        assert energy[s] > 1.5 * np.delete(energy, s).max()  # spill from 1 m away is real, but under


def test_decca_tree_spots_recipe_pans_and_delays_the_spots():
    instruments = ["violin", "violin", "viola", "cello"]
    scene = _scene("decca_tree_spots", layout="string_quartet", instruments=instruments)
    names = [m.name for m in scene.mics]
    assert names[:3] == ["L", "C", "R"] and len(names) == 7
    gains = np.array(scene.mixdown.gains)
    assert gains.shape == (2, 7)
    spots = gains[:, 3:]
    assert spots[0, 0] > spots[1, 0]  # first violin, audience left, panned left
    assert spots[1, 3] > spots[0, 3]  # cello, audience right, panned right
    assert all(0.003 < d < 0.02 for d in scene.mixdown.delays[3:])  # ~1-6 m lead over the tree
    assert scene.mixdown.delays[:3] == (0.0, 0.0, 0.0)
    # The delay lines up a spot's direct sound with the tree's.
    comp = composite_rirs(simulate_rirs(scene, FS), scene, FS)
    assert comp.shape[:2] == (4, 2)


def test_mono_setups_have_one_output_channel():
    assert _scene("mono").output_channels == 1
    scene = _scene("decca_tree_spots_mono")
    assert scene.output_channels == 1 and len(scene.mics) == 5
    assert composite_rirs(simulate_rirs(scene, FS), scene, FS).shape[1] == 1


@pytest.mark.parametrize("mics, message", [
    ({"mics": [{"name": "L", "pattern": "shotgun", "gains": [1, 0]}]}, "unknown polar pattern 'shotgun'"),
    ({"mics": [{"name": "L", "gains": [1.0]}]}, "one gain per output channel"),
    ({"output": "quad", "mics": [{"name": "L"}]}, "output must be one of"),
    ({"output": "stereo"}, "no microphones"),
])
def test_bad_mic_presets_are_user_errors(mics, message):
    with pytest.raises(UserError, match=message):
        _scene(mics)


@pytest.mark.parametrize("preset", ["ab", "xy", "ortf", "decca_tree", "spots", "ambient", "decca_tree_spots", "mono"])
def test_every_mic_preset_fits_every_fixed_room(preset):
    for room in ["dry_studio", "chamber_hall", "concert_hall", "church"]:
        scene = _scene(preset, layout="woodwind_quintet", instruments=["flute", "oboe", "clarinet", "horn", "bassoon"],
                       room=room)
        assert scene.output_channels in (1, 2)
