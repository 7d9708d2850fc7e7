"""`make run`: a demo team, mock models, a demo key with a working curl, and the team's lead
(a login for the portal and the admin; gateway/demo_lead.py), whose password is printed once.

The demo key survives restarts: only its hash is in the database, so the plaintext is kept in a
file next to the embedded SQLite database (var/demo-key, readable by its owner only) and reused
while it still authenticates. A second `make run` (or a restart) therefore does not break the
key a script or notebook is already using. `--new-key` (or DEMO_NEW_KEY=1 make run) revokes it
and issues another. Without the embedded database (production mode) nothing is written to disk:
each run issues a new key, shown once, and revokes the previous one.
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from gateway.config import config_load
from gateway.demo_lead import DEMO_LEAD_EMAIL, demo_lead_ensure
from tenants.keys import KEY_PREFIX, hash_secret
from tenants.models import ApiKey, Team
from tenants.services import api_key_issue, api_key_revoke, api_keys_invalidate

DEMO_CONFIG = """
providers:
  - name: mock
    kind: mock
    region: on-prem
models:
  - name: mock-small
    deployments:
      - provider: mock
        model: mock-small-1
        input_cost_per_mtok: 0.15
        output_cost_per_mtok: 0.60
        context_window: 128000
  - name: mock-embed
    mode: embedding
    deployments:
      - provider: mock
        model: mock-embed-1
        input_cost_per_mtok: 0.02
teams:
  - slug: demo
    name: Demo team
    allowed_models: ["*"]
    # Limits and a budget, so responses show them (x-ratelimit-* headers); edit in the admin.
    policy:
      monthly_budget_usd: 10
      rpm: 600
      tpm: 1000000
      alert_thresholds: [50, 80, 100]
"""
DEMO_KEY_NAME = "demo (make run)"
DEMO_KEY_FILE = "demo-key"


def default_key_file() -> Path | None:
    """Next to the embedded SQLite file (var/demo-key for `make run`); None in production."""
    if not settings.EMBEDDED_DB:
        return None
    return Path(settings.DATABASES["default"]["NAME"]).with_name(DEMO_KEY_FILE)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _reusable_secret(path: Path, team: Team) -> str | None:
    """The saved demo key, if it still authenticates (not revoked, expired or from another db)."""
    try:
        secret = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not secret.startswith(KEY_PREFIX):
        return None
    active = ApiKey.objects.active().filter(
        team=team, name=DEMO_KEY_NAME, key_hash=hash_secret(secret)
    )
    if not active.exists():
        return None
    path.chmod(0o600)  # in case someone loosened it
    return secret


def _save_secret(path: Path, secret: str) -> None:
    """Write the key readable by its owner only, from the first byte (never 0644, then 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(tmp, path)


class Command(BaseCommand):
    help = "Seed the demo team and mock models; print the demo key and how to call it."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument(
            "--new-key",
            action="store_true",
            default=_env_flag("DEMO_NEW_KEY"),
            help="Revoke the saved demo key and issue a new one (also: DEMO_NEW_KEY=1).",
        )
        parser.add_argument(
            "--key-file",
            type=Path,
            default=None,
            help="Where the demo key is kept (default: next to the embedded SQLite database; "
            "not kept at all in production mode).",
        )
        parser.add_argument(
            "--lead-email",
            default=DEMO_LEAD_EMAIL,
            help="The demo team lead's login (created once; its password is printed then only).",
        )

    def handle(
        self,
        *args,
        base_url: str,
        new_key: bool,
        key_file: Path | None,
        lead_email: str,
        **options,
    ):
        path = key_file or default_key_file()
        with transaction.atomic():
            config_load(text=DEMO_CONFIG)
            team = Team.objects.get(slug="demo")
            lead = demo_lead_ensure(team=team, email=lead_email)
            secret = None if new_key or path is None else _reusable_secret(path, team)
            if secret is not None:
                note = "kept from the last run; for a new one: make run DEMO_NEW_KEY=1"
            else:
                # One live demo key at a time: the previous one stops working now.
                previous = list(team.api_keys.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True))
                for old in previous:
                    api_key_revoke(api_key=old)
                api_keys_invalidate(key_hashes=[old.key_hash for old in previous])
                secret = api_key_issue(team=team, name=DEMO_KEY_NAME).secret
                if path is None:
                    note = "new, shown once"
                else:
                    _save_secret(path, secret)
                    note = f"new; kept in {path}, readable only by you"
        mode = (
            "embedded mode: SQLite + in-process state"
            if settings.EMBEDDED_DB
            else "production mode: DATABASE_URL"
        )
        self.stdout.write(f"""
Gateway demo ready ({mode}, mock models, no network needed).

  API key ({note}): {secret}

  curl {base_url}/v1/chat/completions \\
    -H "Authorization: Bearer {secret}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock-small", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  Python:  OpenAI(base_url="{base_url}/v1", api_key="{secret}")
  Limits:  600 requests and 1M tokens a minute, a $10 monthly budget (the demo team's policy)
{_login_lines(base_url, lead)}""")


def _login_lines(base_url: str, lead) -> str:
    if lead.password is not None:
        who = f"""  Login:   {lead.username}  password: {lead.password}
           (shown this once and stored nowhere in clear: note it now)"""
    else:
        who = f"""  Login:   {lead.username}  (password shown when it was created; to set a new one:
           .venv/bin/python manage.py changepassword {lead.username})"""
    return f"""{who}
  Portal:  {base_url}/portal/  (the demo team's keys, spend and members)
  Admin:   {base_url}/admin/  (the same login: the demo lead is a platform admin)
"""
