"""``python -m ensemble_synth``: the ``ensemble-synth`` command, for environments without its script."""

import sys

from .cli import main

sys.exit(main())
