"""The OpenAPI schema validates, and the docs page loads nothing from another site."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


def test_the_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(out),
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert "openapi: 3." in text
    assert "personalAccessToken" in text and "scheme: bearer" in text


@pytest.mark.django_db
def test_the_schema_is_served_and_lists_every_operation():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "teams_list",
        "members_add",
        "keys_create",
        "keys_rotate",
        "keys_revoke",
        "keys_limits_update",
        "teams_policy_update",
        "usage_totals",
        "deployments_health",
        "agreements_create",
        "tokens_create",
    } <= operations
    # Input serializers list exactly what a client may send (mass assignment is closed).
    create = schema["components"]["schemas"]["KeyCreateInputRequest"]["properties"]
    assert set(create) == {"name", "project", "expires_in_days", "allowed_models"}


@pytest.mark.django_db
def test_the_docs_page_loads_nothing_from_a_cdn():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources, page
    assert all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    assert any("drf_spectacular_sidecar" in s for s in sources)
