"""``python -m bfnsolvers ...``: the command line (``bfnsolvers ...``)."""
import sys

from .cli import main

sys.exit(main())
