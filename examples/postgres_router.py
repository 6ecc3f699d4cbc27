"""Route PostgreSQL connections by database name to two servers.

Run it with::

    pointsman tcp -c examples/postgres_router.py -p 5432

then ``psql "host=localhost dbname=orders user=app"`` reaches the orders
server and ``dbname=analytics`` the analytics one; any other database gets
the server's own words: ``FATAL: database "x" does not exist``. libpq's
default ``sslmode=prefer`` asks for TLS first; the router declines (``N``)
and the client continues in clear (a client with ``sslmode=require`` gives
up), so route this way only over networks you trust.

The table comes from ``POINTSMAN_PG_BACKENDS`` (``orders=127.0.0.1:5433,...``)
or the default below.
"""

from __future__ import annotations

import os

from pointsman import routers


def _backends(spec: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in spec.split(",") if "=" in item)
    return {name.strip(): backend.strip() for name, backend in pairs}


BACKENDS = _backends(os.environ.get("POINTSMAN_PG_BACKENDS", "")) or {
    "orders": "127.0.0.1:5433",
    "analytics": "127.0.0.1:5434",
}

route = routers.postgres(BACKENDS, by="database")
