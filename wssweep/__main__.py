import sys

from wssweep.cli import main

sys.exit(main())
