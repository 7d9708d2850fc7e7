"""Rollups and retention on the embedded default's SQLite database (`make run`), where the
rollup sums in Python: the same checks as on Postgres, in a subprocess with no DATABASE_URL."""

from .helpers_proc import base_env, manage

SCRIPT = """
import random
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from billing.models import DailyUsage
from billing.retention import purge
from billing.rollups import rollup_usage
from tests.helpers_rollups import assert_rollups_match_detail, random_rows

assert connection.vendor == "sqlite"
rng = random.Random(11)
for n in (1, 3):
    random_rows(rng, (timezone.now() - timedelta(days=n)).date(), 80)
written = rollup_usage()
assert written == DailyUsage.objects.count() > 10, written
assert_rollups_match_detail()
assert rollup_usage() == 0
random_rows(rng, (timezone.now() - timedelta(days=3)).date(), 10)
assert rollup_usage() > 0
assert_rollups_match_detail()
print("purged", purge())
"""


def test_rollups_and_retention_on_sqlite(tmp_path):
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CELERY_TASK_ALWAYS_EAGER=None,
        WEB_CONCURRENCY="1",
        SQLITE_PATH=str(tmp_path / "gateway.sqlite3"),
    )
    migrated = manage("migrate", "--no-input", "-v0", env=env)
    assert migrated.returncode == 0, migrated.stderr

    ran = manage("shell", "-c", SCRIPT, env=env)

    assert ran.returncode == 0, ran.stderr
    assert "purged {'usage_records': 0, 'usage_content': 0, 'daily_usage': 0}" in ran.stdout
    rebuilt = manage("rollupusage", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == "0 daily usage rows written"
