import sys

from musicssl.cli import main

sys.exit(main())
