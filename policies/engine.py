"""The policy engine: a key's effective policy, merged from its levels, and the checks on it.

Pure: no database, no I/O. policies/snapshot.py builds a PolicyTable from the database once per
TTL; `PolicyTable.effective(principal)` looks up the rules of the principal's organization,
team, project and key and `merge`s them here (memoized per key in the table); the hot path asks
the EffectivePolicy it gets.

Merge rule, most restrictive wins: allowed sets (models, features, providers, regions)
intersect; the max_tokens cap is the minimum (with the mode of the level whose cap binds);
privacy takes the most private mode set; prompt scrubbing is on if any level turns it on, and
custom PII patterns add up (the more specific level wins on a label). Budgets and rate limits
are not merged into one number: each level counts its own traffic against its own numbers, and
all are checked at once (policies/admission.py), so they come out as scopes, one per level that
sets one.
"""

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from routing.regions import within
from tenants.selectors import KeyPrincipal

from .models import PRIVACY_ORDER
from .types import BudgetScope, Denial, Level, LimitScope

# The request parameter a feature comes from, for the `param` of a denial.
_FEATURE_PARAM = {
    "tools": "tools",
    "images": "messages",
    "json_mode": "response_format",
    "streaming": "stream",
}
_MODEL_SCOPES_MAX = 256
_LISTED_MAX = 20


class PolicyDenied(Exception):
    """A request refused by policy; the pipeline answers with the denial (403)."""

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.message)
        self.denial = denial


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    model: str
    features: frozenset[str]  # names of policies.models.FEATURES the request uses
    output_tokens: int  # output tokens asked for; 0: not given
    output_param: str  # the field they were asked in: max_tokens, max_completion_tokens, ...
    texts: Callable[[], Iterable[str]]  # the prompt's texts, read only if terms are blocked


_WORD_CHAR = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class _Term:
    """One blocked term, matched in case-folded text: whole words, any run of spaces between
    them. A plain substring test on its longest word comes first (C speed); the pattern starts
    with a literal, so the regex engine skips ahead to candidates, and the word boundary before
    a candidate is checked here (a leading look-behind would make it try every position)."""

    needle: str
    pattern: re.Pattern
    level: Level
    index: int

    def found_in(self, folded: str) -> bool:
        if self.needle not in folded:
            return False
        for match in self.pattern.finditer(folded):
            start = match.start()
            if start == 0 or _WORD_CHAR.match(folded, start - 1) is None:
                return True
        return False


@lru_cache(maxsize=4096)
def _term_matcher(term: str) -> tuple[str, re.Pattern]:
    """(needle, pattern) for a term; compiled once per term, whichever policies list it."""
    words = term.casefold().split()
    body = r"\s+".join(re.escape(w) for w in words)
    return max(words, key=len), re.compile(body + r"(?!\w)")


@dataclass(frozen=True, slots=True)
class Rules:
    """One Policy row, as the engine reads it. None (or an empty set in the row) sets nothing."""

    allowed_models: frozenset[str] | None = None
    max_tokens: int | None = None
    max_tokens_reject: bool = False
    allowed_features: frozenset[str] | None = None
    blocked_terms: tuple[str, ...] = ()
    budget_micros: int | None = None
    budget_hard: bool = True
    budget_clamp: bool = False
    rpm: int | None = None
    tpm: int | None = None
    user_rpm: int | None = None
    user_tpm: int | None = None
    allowed_providers: frozenset[str] | None = None
    allowed_regions: frozenset[str] | None = None
    privacy_mode: str = ""
    scrub_prompts: bool | None = None
    # Custom PII patterns, compiled once per policy table (infra.pii.compile_patterns).
    pii_patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()
    scope_id: int = 0  # the organization's, team's, project's or key's id


@dataclass(frozen=True, slots=True)
class _Step:
    """One level of an effective policy: who it is, its rules, and its allowed models."""

    level: Level
    kind: str  # as BudgetScope.level: organization | team | project | key
    rules: Rules
    models: frozenset[str] | None


def _intersect(sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    found = None
    for s in sets:
        if s is not None:
            found = s if found is None else found & s
    return found


def _listed(names: Iterable[str]) -> str:
    names = sorted(names)
    if not names:
        return "none"
    return ", ".join(names[:_LISTED_MAX]) + (", ..." if len(names) > _LISTED_MAX else "")


def _both(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return _intersect((a, b))


def _user_hash(user: str) -> str:
    return hashlib.sha256(user.encode()).hexdigest()[:16]


class EffectivePolicy:
    """What one key may do: the merge of its levels. Built once per key per table."""

    __slots__ = (
        "_base_scopes",
        "_blocked",
        "_cap",
        "_features",
        "_model_scopes",
        "_models",
        "_org",
        "_org_limits",
        "_providers",
        "_regions",
        "_team",
        "_team_limits",
        "_user_limits",
        "budgets",
        "handles_content",
        "pii_patterns",
        "privacy_mode",
        "scrub_prompts",
        "steps",
        "tag_keys",
        "timezone",
    )

    def __init__(
        self,
        steps: tuple[_Step, ...],
        *,
        timezone: str,
        org_limits: "Limits",
        team_limits: "Limits",
        tag_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.steps = steps
        self.timezone = timezone
        # The cost allocation tag keys the organization allows (tenants.Organization).
        self.tag_keys = tag_keys
        self._org = steps[0]
        self._team = steps[1]
        self._models = _intersect(s.models for s in steps)
        self._features = _intersect(s.rules.allowed_features for s in steps)
        self._providers = _intersect(s.rules.allowed_providers for s in steps)
        # Not intersected as sets: regions nest (routing/regions.py), so an organization's
        # [eu] and a team's [eu-west] together allow eu-west. A route must be within each.
        self._regions = tuple(
            s.rules.allowed_regions for s in steps if s.rules.allowed_regions is not None
        )
        modes = [s.rules.privacy_mode for s in steps if s.rules.privacy_mode in PRIVACY_ORDER]
        self.privacy_mode = min(modes, key=PRIVACY_ORDER.index) if modes else PRIVACY_ORDER[0]
        self.scrub_prompts = any(s.rules.scrub_prompts for s in steps)
        patterns: dict[str, re.Pattern[str]] = {}
        for step in steps:  # organization first: a later (more specific) level overrides
            patterns.update(step.rules.pii_patterns)
        self.pii_patterns = tuple(patterns.items())
        # The one test the hot path makes for all of the above: False in the default
        # `metadata` mode without prompt scrubbing, and then no content is touched at all.
        self.handles_content = self.scrub_prompts or self.privacy_mode != PRIVACY_ORDER[0]
        self._cap = self._binding_cap()
        self._blocked = self._blocked_terms()
        self.budgets = tuple(
            BudgetScope(
                level=s.kind,
                scope_id=s.rules.scope_id,
                label=str(s.level),
                limit_micros=s.rules.budget_micros,
                hard=s.rules.budget_hard,
                clamp=s.rules.budget_clamp,
            )
            for s in steps
            if s.rules.budget_micros is not None
        )
        # Key first: the narrowest scope is the likeliest to bind.
        self._base_scopes = tuple(
            LimitScope(
                key=f"gw:rl:{'org' if s.kind == 'organization' else s.kind}:{s.rules.scope_id}",
                label=str(s.level),
                rpm=s.rules.rpm,
                tpm=s.rules.tpm,
            )
            for s in reversed(steps)
            if s.rules.rpm is not None or s.rules.tpm is not None
        )
        self._org_limits = org_limits
        self._team_limits = team_limits
        team_rules, org_rules = self._team.rules, self._org.rules
        user_rpm = team_rules.user_rpm if team_rules.user_rpm is not None else org_rules.user_rpm
        user_tpm = team_rules.user_tpm if team_rules.user_tpm is not None else org_rules.user_tpm
        self._user_limits = (user_rpm, user_tpm)
        self._model_scopes: dict[str, tuple[LimitScope, ...]] = {}

    # --- models -----------------------------------------------------------------------------

    def may_use(self, model: str) -> bool:
        return self._models is None or model in self._models

    def model_denial(self, model: str) -> Denial:
        for step in self.steps:
            if step.models is not None and model not in step.models:
                return Denial(
                    f"{step.level} allows models: {_listed(step.models)}",
                    code="model_not_allowed",
                    param="model",
                )
        return Denial(
            f"the model '{model}' is not allowed", code="model_not_allowed", param="model"
        )

    # --- the request ------------------------------------------------------------------------

    def check_request(self, req: PolicyRequest) -> int | None:
        """The output-token cap to write into the request (None: leave it alone), or
        PolicyDenied. Cheap checks first; the prompt is read only if terms are blocked."""
        if self._features is not None and not req.features <= self._features:
            raise PolicyDenied(self._feature_denial(req.features - self._features))
        granted = None
        if self._cap is not None:
            cap, step = self._cap
            if req.output_tokens > cap:
                if step.rules.max_tokens_reject:
                    raise PolicyDenied(
                        Denial(
                            f"{step.level} caps {req.output_param} at {cap}; "
                            f"the request asks for {req.output_tokens}",
                            code="max_tokens_exceeded",
                            param=req.output_param,
                        )
                    )
                granted = cap
            elif req.output_tokens <= 0:
                granted = cap
        if self._blocked:
            for text in req.texts():
                # Case-folded once per text (so "STRASSE" matches "straße"), then each term.
                folded = text.casefold()
                for term in self._blocked:
                    if term.found_in(folded):
                        raise PolicyDenied(
                            Denial(
                                f"prompt matches {term.level} rule blocked_terms[{term.index}]",
                                code="blocked_term",
                            )
                        )
        return granted

    def _feature_denial(self, refused: frozenset[str]) -> Denial:
        feature = min(refused)
        step = next(
            s
            for s in self.steps
            if s.rules.allowed_features is not None and feature not in s.rules.allowed_features
        )
        return Denial(
            f"{step.level} does not allow {feature}",
            code="feature_not_allowed",
            param=_FEATURE_PARAM.get(feature),
        )

    def _binding_cap(self) -> tuple[int, _Step] | None:
        """The smallest cap and the level it is from; on a tie, a level that rejects wins (the
        stricter mode)."""
        best = None
        for step in self.steps:
            cap = step.rules.max_tokens
            if cap is None:
                continue
            if (
                best is None
                or cap < best[0]
                or (
                    cap == best[0]
                    and step.rules.max_tokens_reject
                    and not best[1].rules.max_tokens_reject
                )
            ):
                best = (cap, step)
        return best

    def _blocked_terms(self) -> tuple[_Term, ...]:
        found = []
        for step in self.steps:
            for index, term in enumerate(step.rules.blocked_terms):
                if term.strip():
                    needle, pattern = _term_matcher(term)
                    found.append(_Term(needle, pattern, step.level, index))
        return tuple(found)

    # --- routes -----------------------------------------------------------------------------

    @property
    def restricts_regions(self) -> bool:
        """Whether some level allows only certain regions (messages say so)."""
        return bool(self._regions)

    def allows_route(self, provider_name: str, residency: str) -> bool:
        """`residency`: the route's vocabulary region (Route.residency); a sub-region is
        within its parent (`eu` allows `eu-west`), and no region is within no restriction."""
        return (self._providers is None or provider_name in self._providers) and all(
            within(residency, allowed) for allowed in self._regions
        )

    def route_denial(self, model: str) -> Denial:
        reasons = []
        for step in self.steps:
            if step.rules.allowed_providers is not None:
                reasons.append(
                    f"{step.level} allows providers: {_listed(step.rules.allowed_providers)}"
                )
            if step.rules.allowed_regions is not None:
                reasons.append(
                    f"{step.level} allows regions: {_listed(step.rules.allowed_regions)}"
                )
        where = "there" if len(reasons) == 1 else "within all of these"
        reasons.append(f"no deployment of '{model}' is {where}")
        return Denial("; ".join(reasons), code="route_not_allowed", param="model")

    # --- limits -----------------------------------------------------------------------------

    def limit_scopes(self, model: str, end_user: str | None) -> tuple[LimitScope, ...]:
        scopes = self._model_scopes.get(model)
        if scopes is None:
            scopes = self._base_scopes + self._scopes_of_model(model)
            if len(self._model_scopes) >= _MODEL_SCOPES_MAX:
                self._model_scopes.clear()
            self._model_scopes[model] = scopes
        rpm, tpm = self._user_limits
        if end_user and (rpm is not None or tpm is not None):
            team = self._team
            scopes += (
                LimitScope(
                    key=f"gw:rl:team:{team.rules.scope_id}:user:{_user_hash(end_user)}",
                    label=f"end users of {team.level}",
                    rpm=rpm,
                    tpm=tpm,
                ),
            )
        return scopes

    def _scopes_of_model(self, model: str) -> tuple[LimitScope, ...]:
        found = []
        for step, limits, kind in (
            (self._team, self._team_limits, "team"),
            (self._org, self._org_limits, "org"),
        ):
            limit = limits.get(model)
            if limit is not None:
                found.append(
                    LimitScope(
                        key=f"gw:rl:{kind}:{step.rules.scope_id}:model:{model}",
                        label=f"model '{model}' in {step.level}",
                        rpm=limit[0],
                        tpm=limit[1],
                    )
                )
        return tuple(found)


Limits = Mapping[str, tuple[int | None, int | None]]  # model -> (rpm, tpm)


def merge(
    p: KeyPrincipal,
    *,
    org_slug: str,
    timezone: str,
    org: Rules | None,
    tag_keys: frozenset[str] = frozenset(),
    team: Rules | None,
    project: Rules | None,
    project_slug: str,
    key: Rules | None,
    org_limits: Limits,
    team_limits: Limits,
) -> EffectivePolicy:
    """The key's levels, in order organization, team, project, key, merged. A level without a
    policy still has a name (denials and scopes name it) and sets nothing."""
    org = org or Rules(scope_id=p.org_id)
    team = team or Rules(scope_id=p.team_id)
    steps = [
        _Step(Level("organization", org_slug), "organization", org, org.allowed_models),
        # The team's own list (tenants.Team.allowed_models) and its policy's.
        _Step(Level("team", p.team_slug), "team", team, _both(p.team_models, team.allowed_models)),
    ]
    if p.project_id is not None:
        project = project or Rules(scope_id=p.project_id)
        level = Level("project", project_slug)
        steps.append(_Step(level, "project", project, project.allowed_models))
    key = key or Rules(scope_id=p.key_id)
    # The key's own narrowing of its team's list (KeyPrincipal.allowed_models holds the two
    # merged, so KeyPrincipal.may_use keeps its meaning), and its policy's.
    key_models = _both(p.allowed_models, key.allowed_models)
    steps.append(_Step(Level("key", p.key_name or p.key_prefix), "key", key, key_models))
    return EffectivePolicy(
        tuple(steps),
        timezone=timezone,
        org_limits=org_limits,
        team_limits=team_limits,
        tag_keys=tag_keys,
    )
