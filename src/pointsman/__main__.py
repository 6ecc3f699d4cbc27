"""``python -m pointsman`` is the ``pointsman`` command."""

from pointsman.cli import main

raise SystemExit(main())
