"""`python -m fusec.cli`, the same program as `fusec`."""

import sys

from . import main

sys.exit(main())
