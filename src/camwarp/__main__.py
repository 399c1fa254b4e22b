"""``python -m camwarp`` runs the command line."""

from camwarp.cli import main

raise SystemExit(main())
