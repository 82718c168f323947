"""`python -m hub` is `connector-hub`."""

import sys

from hub.cli import main

sys.exit(main())
