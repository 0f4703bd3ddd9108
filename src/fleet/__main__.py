import sys

from fleet.front.cli import main

sys.exit(main())
