"""The values the policy engine hands the hot path: pure data, no database, no I/O.

policies/engine.py builds an EffectivePolicy per key (org > team > project > key merged) from the
cached snapshot (policies/snapshot.py); the pipeline checks the request against it and passes
its scopes to admission (policies/admission.py), which reserves rate limits and budgets for all
of them in one round trip.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

_MICROS = Decimal(1_000_000)


def usd_to_micros(usd: Decimal | int) -> int:
    """Whole micro-dollars, rounded up: a spend counter never shows less than was spent, and a
    limit (at most 6 decimals) converts exactly."""
    return math.ceil(Decimal(usd) * _MICROS)


@dataclass(frozen=True, slots=True)
class Level:
    """Where a rule was set, as denials name it: `team 'search'`, `key 'ci-bot'`."""

    kind: str  # "organization" | "team" | "project" | "key"
    name: str  # slug, or the key's name

    def __str__(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass(frozen=True, slots=True)
class Denial:
    """A refusal by policy. `message` names the rule and its level and never echoes request
    text (a blocked term is named by its rule, not by the words that matched)."""

    message: str
    code: str  # e.g. "model_not_allowed", "max_tokens_exceeded", "blocked_term"
    status: int = 403
    param: str | None = None


@dataclass(frozen=True, slots=True)
class LimitScope:
    """One rate-limited scope: its own counters, its own RPM and TPM (None: not limited)."""

    key: str  # state-store key stem, e.g. "gw:rl:team:3", "gw:rl:team:3:model:small"
    label: str  # for messages: "team 'search'", "model 'small' for team 'search'"
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """One budget: its level's monthly limit against that level's own spend."""

    level: str  # "organization" | "team" | "project" | "key"
    scope_id: int
    label: str  # "team 'search'"
    limit_micros: int  # micro-dollars per period
    hard: bool  # hard: refuse once spent; soft: allow and warn
    clamp: bool  # lower max_tokens to what the budget still fits, instead of refusing

    @property
    def key(self) -> str:
        """State-store key stem; the period and the counter follow (policies/admission.py)."""
        return f"gw:bud:{self.level}:{self.scope_id}"
