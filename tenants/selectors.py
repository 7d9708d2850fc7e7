"""Reads for tenants. The hot path needs one thing: who is this key, as a small snapshot."""

from dataclasses import asdict, dataclass

from .models import ApiKey, Team


@dataclass(frozen=True, slots=True)
class KeyPrincipal:
    """What the proxy knows about a caller. Cached (process, then Redis), so keep it small."""

    key_id: int
    key_prefix: str
    team_id: int
    team_slug: str
    org_id: int
    project_id: int | None
    user_id: int | None
    # Public model names this key may call (the team's list narrowed by the key's); None means
    # every model.
    allowed_models: frozenset[str] | None
    expires_at: float | None  # epoch seconds
    revoked: bool
    key_name: str = ""
    # The team's own list, before the key narrowed it: says who refused a model, team or key.
    team_models: frozenset[str] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in ("allowed_models", "team_models"):
            if data[name] is not None:
                data[name] = sorted(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "KeyPrincipal":
        data = dict(data)
        # A snapshot cached by an older version has neither key_name nor team_models; until it
        # expires, its merged list stands in for the team's (refusals name the team, as before).
        data.setdefault("team_models", data["allowed_models"])
        for name in ("allowed_models", "team_models"):
            if data[name] is not None:
                data[name] = frozenset(data[name])
        return cls(**data)

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models

    def refused_by_team(self, model: str) -> bool:
        """Whether the team's list (rather than the key's narrowing of it) excludes `model`."""
        return self.team_models is not None and model not in self.team_models


def _model_set(names: list[str]) -> frozenset[str] | None:
    return None if "*" in names else frozenset(names)


def effective_allowed_models(team: Team, key: ApiKey) -> frozenset[str] | None:
    """Most restrictive wins: a key can narrow its team's list, never widen it."""
    team_models = _model_set(team.allowed_models)
    key_models = _model_set(key.allowed_models) if key.allowed_models else None
    if team_models is None:
        return key_models
    if key_models is None:
        return team_models
    return team_models & key_models


def api_key_principal_get(*, key_hash: str) -> KeyPrincipal | None:
    key = ApiKey.objects.select_related("team__organization").filter(key_hash=key_hash).first()
    if key is None:
        return None
    team = key.team
    return KeyPrincipal(
        key_id=key.pk,
        key_prefix=key.prefix,
        team_id=team.pk,
        team_slug=team.slug,
        org_id=team.organization_id,
        project_id=key.project_id,
        user_id=key.owner_id,
        allowed_models=effective_allowed_models(team, key),
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
        # An inactive team's or organization's keys stop working like revoked ones.
        revoked=key.revoked_at is not None or not (team.is_active and team.organization.is_active),
        key_name=key.name,
        team_models=_model_set(team.allowed_models),
    )
