"""``python -m deepcore.gradcheck``: see :mod:`deepcore.gradcheck.cli`."""
import sys

from deepcore.gradcheck.cli import main

if __name__ == "__main__":
    sys.exit(main())
