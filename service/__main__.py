"""``python -m service``: the same as the ``seedance-gateway`` command."""

import sys

from service.cli import main

sys.exit(main())
