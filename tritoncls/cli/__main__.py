"""``python -m tritoncls.cli``: the ``tritoncls`` command."""

import sys

from tritoncls.cli import main

sys.exit(main())
