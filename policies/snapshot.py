"""The policy table: every Policy and ModelLimit row, as a per-process snapshot.

The hot path never queries the database for policies: it reads this snapshot, built by one
bounded database call and refreshed like the routing table (infra/snapshot.py). A change saved
in this process applies at once (the signals below drop the snapshot on commit); in other
processes, within GATEWAY_POLICY_CACHE_TTL_S.
"""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from infra.pii import compile_patterns
from infra.snapshot import SnapshotCache, SnapshotUnavailable, TablesFingerprint
from tenants.models import Organization, Project, default_tag_keys
from tenants.selectors import KeyPrincipal

from .engine import EffectivePolicy, Limits, Rules, merge
from .models import FEATURES, BudgetMode, MaxTokensMode, ModelLimit, Policy
from .types import usd_to_micros

log = logging.getLogger(__name__)

# Effective policies kept per table; a table lives a few seconds, so this only bounds memory
# against a flood of distinct keys.
_MEMO_MAX = 10_000
_NO_LIMITS: Limits = {}


@dataclass(frozen=True, slots=True)
class PolicyTable:
    """Every policy and model limit, as of `built_at` (time.monotonic()). Immutable but for the
    memo of effective policies, which is derived from it and dies with it."""

    built_at: float
    organizations: Mapping[int, tuple[str, str]]  # id -> (slug, timezone)
    org_rules: Mapping[int, Rules] = field(default_factory=dict)
    # id -> the cost allocation tag keys the organization allows (gateway/proxy/tags.py)
    org_tag_keys: Mapping[int, frozenset[str]] = field(default_factory=dict)
    team_rules: Mapping[int, Rules] = field(default_factory=dict)
    project_rules: Mapping[int, Rules] = field(default_factory=dict)
    key_rules: Mapping[int, Rules] = field(default_factory=dict)
    project_slugs: Mapping[int, str] = field(default_factory=dict)
    org_model_limits: Mapping[int, Limits] = field(default_factory=dict)
    team_model_limits: Mapping[int, Limits] = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def effective(self, principal: KeyPrincipal) -> EffectivePolicy:
        p = principal
        # Everything of the principal the merge reads: a key whose team's list changed gets a
        # new principal (tenants/keycache.py), and must not find the old merge here.
        memo_key = (
            p.key_id,
            p.team_id,
            p.org_id,
            p.project_id,
            p.team_slug,
            p.key_name,
            p.key_prefix,
            p.team_models,
            p.allowed_models,
        )
        found = self._memo.get(memo_key)
        if found is None:
            org_slug, timezone = self.organizations.get(p.org_id, (str(p.org_id), "UTC"))
            found = merge(
                p,
                org_slug=org_slug,
                timezone=timezone,
                tag_keys=self.org_tag_keys.get(p.org_id, _DEFAULT_TAG_KEYS),
                org=self.org_rules.get(p.org_id),
                team=self.team_rules.get(p.team_id),
                project=self.project_rules.get(p.project_id),
                project_slug=self.project_slugs.get(p.project_id, str(p.project_id)),
                key=self.key_rules.get(p.key_id),
                org_limits=self.org_model_limits.get(p.org_id, _NO_LIMITS),
                team_limits=self.team_model_limits.get(p.team_id, _NO_LIMITS),
            )
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[memo_key] = found
        return found


_DEFAULT_TAG_KEYS = frozenset(default_tag_keys())

__all__ = ["PolicyTable", "PolicyTableUnavailable", "policy_table_build", "policy_table_cache"]


def _names(value) -> frozenset[str] | None:
    """A JSON list of names as a set; empty, missing or "*": no restriction at this level."""
    if not isinstance(value, list) or not value or "*" in value:
        return None
    return frozenset(str(v) for v in value)


def rules_of(policy: Policy, scope_id: int) -> Rules:
    features = _names(policy.allowed_features)
    return Rules(
        allowed_models=_names(policy.allowed_models),
        max_tokens=policy.max_tokens,
        max_tokens_reject=policy.max_tokens_mode == MaxTokensMode.REJECT,
        # Unknown names in the row (written around the admin) allow nothing extra.
        allowed_features=None if features is None else features & frozenset(FEATURES),
        blocked_terms=tuple(str(t) for t in (policy.blocked_terms or ())),
        budget_micros=(
            usd_to_micros(policy.monthly_budget_usd)
            if policy.monthly_budget_usd is not None
            else None
        ),
        budget_hard=policy.budget_mode != BudgetMode.SOFT,
        budget_clamp=policy.budget_clamp,
        rpm=policy.rpm,
        tpm=policy.tpm,
        user_rpm=policy.user_rpm,
        user_tpm=policy.user_tpm,
        allowed_providers=_names(policy.allowed_providers),
        allowed_regions=_names(policy.allowed_regions),
        privacy_mode=policy.privacy_mode,
        scrub_prompts=policy.scrub_prompts,
        pii_patterns=_patterns(policy),
        scope_id=scope_id,
    )


def _patterns(policy: Policy) -> tuple:
    """The policy's custom PII patterns, compiled. A mapping that does not compile (written
    around the admin's and the loader's checks) scrubs with the built-in detectors only, and
    says so, rather than costing every request of the level its policy."""
    if not policy.pii_patterns:
        return ()
    try:
        return compile_patterns(policy.pii_patterns)
    except (ValueError, AttributeError, TypeError) as exc:
        log.error("policy %s: pii_patterns ignored: %s", policy.pk, exc)
        return ()


def policy_table_build() -> PolicyTable:
    started = time.monotonic()
    by_level: dict[str, dict[int, Rules]] = {
        "organization": {},
        "team": {},
        "project": {},
        "api_key": {},
    }
    project_slugs: dict[int, str] = {}
    for policy in Policy.objects.select_related("project"):
        for level, rules in by_level.items():
            scope_id = getattr(policy, f"{level}_id")
            if scope_id is not None:
                rules[scope_id] = rules_of(policy, scope_id)
                if level == "project":
                    project_slugs[scope_id] = policy.project.slug
                break
    org_limits: dict[int, dict[str, tuple]] = {}
    team_limits: dict[int, dict[str, tuple]] = {}
    for limit in ModelLimit.objects.all():
        if limit.team_id is not None:
            team_limits.setdefault(limit.team_id, {})[limit.model] = (limit.rpm, limit.tpm)
        else:
            org_limits.setdefault(limit.organization_id, {})[limit.model] = (limit.rpm, limit.tpm)
    organizations, org_tag_keys = {}, {}
    for pk, slug, tz, keys in Organization.objects.values_list(
        "pk", "slug", "timezone", "allowed_tag_keys"
    ):
        organizations[pk] = (slug, tz)
        org_tag_keys[pk] = frozenset(keys) if isinstance(keys, list) else _DEFAULT_TAG_KEYS
    return PolicyTable(
        built_at=started,
        organizations=organizations,
        org_tag_keys=org_tag_keys,
        org_rules=by_level["organization"],
        team_rules=by_level["team"],
        project_rules=by_level["project"],
        key_rules=by_level["api_key"],
        project_slugs=project_slugs,
        org_model_limits=org_limits,
        team_model_limits=team_limits,
    )


class PolicyTableUnavailable(SnapshotUnavailable):
    """No policy table yet, and building one failed moments ago: requests get a 503 rather
    than run without their limits."""


policy_table_cache: SnapshotCache[PolicyTable] = SnapshotCache(
    "policy table",
    policy_table_build,
    lambda: settings.GATEWAY_POLICY_CACHE_TTL_S,
    unavailable=PolicyTableUnavailable,
    logger=log,
    # Unchanged tables: no rebuild (infra/snapshot.py).
    fingerprint=TablesFingerprint(Policy, ModelLimit, Organization, Project),
)


def invalidate_on_commit(**_kwargs) -> None:
    """A signal receiver: drop this process's snapshot once the change is committed (before,
    a rebuild on another connection would read, and keep, the old rows)."""
    transaction.on_commit(policy_table_cache.invalidate)
