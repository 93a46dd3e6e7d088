import sys

from wrpn_rtl.cli import main

sys.exit(main())
