"""`make run`: a demo team, mock models, and a fresh key printed once with a working curl."""

from django.core.management.base import BaseCommand
from django.db import transaction

from gateway.config import config_load
from tenants.models import Team
from tenants.services import api_key_issue, api_key_revoke

DEMO_CONFIG = """
providers:
  - name: mock
    kind: mock
    region: local
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
"""
DEMO_KEY_NAME = "demo (make run)"


class Command(BaseCommand):
    help = "Seed the demo team and mock models; issue a new demo key and print how to call it."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        with transaction.atomic():
            config_load(text=DEMO_CONFIG)
            team = Team.objects.get(slug="demo")
            # One live demo key at a time: the previous run's key is revoked.
            for old in team.api_keys.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True):
                api_key_revoke(api_key=old)
            issued = api_key_issue(team=team, name=DEMO_KEY_NAME)
        key = issued.secret
        self.stdout.write(f"""
Gateway demo ready (embedded mode: SQLite + in-process state, mock models, no network needed).

  API key (shown once): {key}

  curl {base_url}/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "mock-small", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  Python:  OpenAI(base_url="{base_url}/v1", api_key="{key}")
  Admin:   {base_url}/admin/  (create a login with: .venv/bin/python manage.py createsuperuser)
""")
