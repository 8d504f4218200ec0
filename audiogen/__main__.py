"""`python -m audiogen ...` (also what `torchrun -m audiogen train ...` runs)."""

import sys

from .cli import main

sys.exit(main())
