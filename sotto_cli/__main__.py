"""`python -m sotto_cli ...` is `sotto ...`."""

import sys

from sotto_cli.cli import main

sys.exit(main())
