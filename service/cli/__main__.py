"""``python -m clmmd.service.cli``: the same as the ``clmmd`` console script."""

import sys

from clmmd.service.cli.main import main

sys.exit(main())
