"""Side-by-side benchmarks: pointsman against HAProxy, nginx and a direct baseline.

Speed is never asserted in tests; it is measured here, on loopback, against the
peers pointsman claims to beat, with every peer limited to one worker. Run
``python -m bench --help``. The core modules (process management, CPU
accounting, load generators, reporting) are shared; each scenario is one small
module in ``bench.scenarios``.
"""
