import sys

from reports.cli import main

# Guarded: the report's prediction process re-imports the main module when it starts.
if __name__ == "__main__":
    sys.exit(main())
