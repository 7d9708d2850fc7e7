"""Container health checks, in Python because the image has no curl.

    python docker/healthcheck.py /healthz      # web, liveness: the process answers
    python docker/healthcheck.py /readyz       # web, readiness: database, Redis, tables
    python docker/healthcheck.py --beat        # beat: its schedule file is being written

Exit status 0 is healthy, 1 unhealthy (what Docker's HEALTHCHECK expects). Standard library
only, and no Django: it runs every few seconds and must stay cheap.
"""

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# celery beat (docker/entrypoint.sh) writes its schedule here at least every 3 minutes
# (Celery's PersistentScheduler.sync_every) while tasks are due, and ingest-usage is due every
# second; older than this, beat has stopped scheduling.
BEAT_SCHEDULE = Path("/tmp/celerybeat-schedule")  # noqa: S108 (the entrypoint's choice)
BEAT_MAX_AGE_S = 600


def host_header() -> str:
    """A name Django accepts: the first ALLOWED_HOSTS entry (the check connects to 127.0.0.1,
    but an operator who sets ALLOWED_HOSTS to the public name alone would otherwise get 400)."""
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        entry = entry.strip().lstrip(".")  # ".example.com" also matches example.com
        if entry and entry != "*":
            return entry
    return "127.0.0.1"  # in the default ALLOWED_HOSTS


def check_http(path: str) -> str | None:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Host": host_header()}
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 (fixed URL)
            return None if response.status == 200 else f"{path} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{path} answered {exc.code}"
    except OSError as exc:
        return f"{path} unreachable: {exc}"


def check_beat() -> str | None:
    # The file's name depends on the dbm module shelve picked: celerybeat-schedule(.db|.dat...).
    files = list(BEAT_SCHEDULE.parent.glob(BEAT_SCHEDULE.name + "*"))
    if not files:
        return f"no {BEAT_SCHEDULE}* yet"
    age = time.time() - max(f.stat().st_mtime for f in files)
    return None if age <= BEAT_MAX_AGE_S else f"{BEAT_SCHEDULE} not written for {age:.0f} s"


def main(argv: list[str]) -> int:
    if argv == ["--beat"]:
        problem = check_beat()
    elif len(argv) == 1 and argv[0].startswith("/"):
        problem = check_http(argv[0])
    else:
        sys.stderr.write(__doc__)
        return 2
    if problem:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
