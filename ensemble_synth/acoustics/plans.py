"""Figures: the floor plan of a scene (room, players, microphones and their aim)."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

from ..fileio import write_bytes_atomic
from ..music.instruments import get as get_instrument
from .scene import Scene

FAMILY_COLOURS = {"strings": "tab:red", "woodwinds": "tab:green", "brass": "tab:orange"}


def _arrow(ax, x, y, azimuth_deg, length, colour):
    a = math.radians(azimuth_deg)
    ax.annotate("", xy=(x + length * math.cos(a), y + length * math.sin(a)), xytext=(x, y),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})


def _draw(ax, scene: Scene, arrow: float, labels: bool) -> None:
    from matplotlib.patches import Rectangle

    width, length, _ = scene.room.dimensions
    ax.add_patch(Rectangle((0, 0), width, length, fill=False, lw=2, color="black"))
    for player in scene.players:
        colour = FAMILY_COLOURS.get(get_instrument(player.instrument).family, "tab:blue")
        x, y, _ = player.position
        ax.plot(x, y, "o", color=colour, ms=9)
        _arrow(ax, x, y, player.azimuth, arrow, colour)
        if labels:
            ax.annotate(player.name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8, color=colour)
    for mic in scene.mics:
        x, y, _ = mic.position
        ax.plot(x, y, "^", color="tab:blue", ms=7)
        if mic.pattern != "omni":
            _arrow(ax, x, y, mic.azimuth, arrow * 0.8, "tab:blue")
        if labels:
            ax.annotate(f"{mic.name} ({mic.pattern})", (x, y), textcoords="offset points", xytext=(6, -10),
                        fontsize=7, color="tab:blue")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def plot_plan(scene: Scene, path: str | os.PathLike) -> Path:
    """Write a PNG with the whole room (left) and the stage close up (right)."""
    import matplotlib  # where used: a third of a second at start-up otherwise

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, (whole, stage) = plt.subplots(1, 2, figsize=(12, 6))
    width, length, height = scene.room.dimensions
    _draw(whole, scene, arrow=max(width, length) * 0.04, labels=False)
    whole.set_xlim(-0.5, width + 0.5)
    whole.set_ylim(-0.5, length + 0.5)
    whole.set_title(f"{scene.room.name}: {width:g} x {length:g} x {height:g} m, RT60 {scene.room.rt60:.2f} s")
    _draw(stage, scene, arrow=0.5, labels=True)
    xs = [p.position[0] for p in (*scene.players, *scene.mics)]
    ys = [p.position[1] for p in (*scene.players, *scene.mics)]
    stage.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    stage.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    stage.set_title("stage (arrows: facing / microphone aim; the audience is toward y = 0)")
    fig.tight_layout()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())  # whole or not at all, no temporary left on failure
    return path
