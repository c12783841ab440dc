import sys

from render3d.cli.main import main

sys.exit(main())
