"""`python -m helpers <command> ...`: the workshop's command line (helpers/cli.py; see `--help`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
