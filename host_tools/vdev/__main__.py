"""`python -m host_tools.vdev serve ...`: the process behind `sotto vdev start`."""

import sys

from host_tools.vdev.process import main

if __name__ == "__main__":
    sys.exit(main())
