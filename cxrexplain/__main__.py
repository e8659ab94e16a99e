"""``python -m cxrexplain`` runs the ``cxrexplain`` command."""

import sys

from cxrexplain.cli import main

sys.exit(main())
