"""`python -m gazeneg <command>`: the same dispatcher as the `gazeneg` console command."""

import sys

from gazeneg.cli.main import main

sys.exit(main())
