import sys

from ilcore.cli.main import main

sys.exit(main())
