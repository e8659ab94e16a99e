"""``python -m cxrexplain`` runs the ``cxrexplain`` command (``--help`` imports no TensorFlow:
the package ``__init__`` loads its public names lazily)."""

import sys

from cxrexplain.cli import main

sys.exit(main())
