"""``python -m camwarp.cli``."""

from camwarp.cli import main

raise SystemExit(main())
