"""``python -m stream.cli``: the same as the ``engagement`` command."""

import sys

from stream.cli.main import main

sys.exit(main())
