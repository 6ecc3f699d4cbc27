"""``python -m bench`` runs the side-by-side benchmarks."""

from bench.cli import main

raise SystemExit(main())
