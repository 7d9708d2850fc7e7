"""Loaded with `-p tests.xdist_env` before Django's settings: under pytest-xdist, each worker gets
a Redis database of its own, so one worker's flush never empties another's state.

pytest-django already gives each worker its own Postgres test database (test_<name>_gw<N>);
Redis has no such suffix, so worker N uses database (base + N) mod 16, where base is the
database in REDIS_URL (`make test` passes 15: gw0 uses 15, gw1 uses 0, ...). Subprocesses that
the tests start inherit the rewritten REDIS_URL.
"""

import os
from urllib.parse import urlsplit, urlunsplit

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and os.environ.get("REDIS_URL"):
    _url = urlsplit(os.environ["REDIS_URL"])
    _base = int(_url.path.strip("/") or 0)
    _db = (_base + int(_worker.removeprefix("gw"))) % 16
    os.environ["REDIS_URL"] = urlunsplit(_url._replace(path=f"/{_db}"))
