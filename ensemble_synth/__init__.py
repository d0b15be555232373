"""ensemble_synth: realistic synthetic recordings of small classical ensembles."""

__version__ = "0.1.0"

from .errors import UserError  # noqa: E402

# The public corpus API, imported on first use so that `import ensemble_synth` stays light.
_LAZY = {
    "generate": ("generation", "generate"),
    "sample_track": ("corpus", "sample_track"),
    "render_track": ("corpus", "render_track"),
    "write_track": ("generation", "write_track"),
    "Augmentation": ("augment", "Augmentation"),
}

__all__ = ["UserError", "__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'ensemble_synth' has no attribute {name!r}")
