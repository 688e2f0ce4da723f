"""``python -m detector``: see `detector.cli`."""

import sys

from detector.cli import main

sys.exit(main())
