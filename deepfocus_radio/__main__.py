"""``python -m deepfocus_radio`` is the ``deepfocus`` command."""

import sys

from deepfocus_radio.cli.main import main

sys.exit(main())
