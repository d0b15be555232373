"""Commands of this area (filled in by its module owner)."""

from . import cli  # noqa: F401
