"""The key snapshot the proxy caches: what it carries to explain a refusal, and its JSON form."""

import orjson

from tenants.keys import hash_secret
from tenants.selectors import KeyPrincipal, api_key_principal_get
from tenants.services import api_key_issue

from .factories import TeamFactory


def test_principal_knows_the_key_name_and_the_teams_own_models(db):
    team = TeamFactory(slug="search", allowed_models=["small", "large"])
    secret = api_key_issue(team=team, name="ci-bot", allowed_models=["small"]).secret

    principal = api_key_principal_get(key_hash=hash_secret(secret))

    assert principal.key_name == "ci-bot"
    assert principal.allowed_models == frozenset({"small"})
    assert principal.team_models == frozenset({"small", "large"})
    assert not principal.refused_by_team("large")  # the key narrowed it away
    assert principal.refused_by_team("huge")  # the team never had it


def test_open_team_refuses_nothing_itself(db):
    team = TeamFactory(allowed_models=["*"])
    secret = api_key_issue(team=team, name="k", allowed_models=["small"]).secret

    principal = api_key_principal_get(key_hash=hash_secret(secret))

    assert principal.team_models is None
    assert not principal.may_use("large")
    assert not principal.refused_by_team("large")


def test_snapshot_survives_its_json_round_trip(db):
    team = TeamFactory(allowed_models=["small", "large"])
    secret = api_key_issue(team=team, name="ci-bot", allowed_models=["small"]).secret
    principal = api_key_principal_get(key_hash=hash_secret(secret))

    cached = orjson.loads(orjson.dumps(principal.to_dict()))

    assert cached["team_models"] == ["large", "small"]
    assert KeyPrincipal.from_dict(cached) == principal


def test_snapshot_cached_by_an_older_version_still_loads():
    cached = {
        "key_id": 1,
        "key_prefix": "sk-gw-abcdef",
        "team_id": 2,
        "team_slug": "search",
        "org_id": 3,
        "project_id": None,
        "user_id": None,
        "allowed_models": ["small"],
        "expires_at": None,
        "revoked": False,
    }

    principal = KeyPrincipal.from_dict(cached)

    assert principal.may_use("small") and not principal.may_use("large")
    # Without the team's own list, a refusal is put on the team, as it was before.
    assert principal.refused_by_team("large")
