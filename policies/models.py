"""Policies: what a tenant may do, attached to an organization, a team, a project or a key.

Each level holds at most one Policy; a request is held to all of the levels above its key at
once (policies/engine.py merges them, most restrictive wins). A field left empty (None) sets
nothing at that level. Budgets and rate limits are not merged into one number: each level's
budget and limits count that level's own traffic (a team's RPM counts all of the team's keys).

ModelLimit caps one public model's traffic across an organization or within one team.
"""

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from infra.pii import compile_patterns
from routing import crypto
from tenants.models import ApiKey, Organization, Project, Team

LEVELS = ("organization", "team", "project", "api_key")
# Request features a policy can allow; the names of routing/capabilities.py, with "images" for
# what capabilities call "vision" (the word policy authors use).
FEATURES = ("tools", "images", "json_mode", "streaming")


class MaxTokensMode(models.TextChoices):
    CLAMP = "clamp", "Clamp to the cap"
    REJECT = "reject", "Refuse the request"


class BudgetMode(models.TextChoices):
    HARD = "hard", "Hard: refuse once spent"
    SOFT = "soft", "Soft: allow, warn in a header"


class PrivacyMode(models.TextChoices):
    # Ordered from least to most content kept; the merge keeps the earliest (most private).
    METADATA = "metadata", "Metadata only"
    HASHED = "hashed", "Keyed hashes of content"
    REDACTED = "redacted", "Content, PII scrubbed"
    FULL = "full", "Full content (opt-in)"


PRIVACY_ORDER = tuple(PrivacyMode.values)

# Every field a policy author sets (all but the level it attaches to), in the order the admin
# groups them; YAML also takes alert_webhook_url (stored encrypted).
RULE_FIELDS = (
    "allowed_models",
    "max_tokens",
    "max_tokens_mode",
    "allowed_features",
    "blocked_terms",
    "monthly_budget_usd",
    "budget_mode",
    "budget_clamp",
    "rpm",
    "tpm",
    "user_rpm",
    "user_tpm",
    "allowed_providers",
    "allowed_regions",
    "privacy_mode",
    "scrub_prompts",
    "pii_patterns",
    "alert_thresholds",
    "alert_emails",
)


def _exactly_one(fields: tuple[str, ...]) -> models.Q:
    """Exactly one of `fields` is set."""
    found = models.Q()
    for chosen in fields:
        found |= models.Q(
            **{f"{f}__isnull": f != chosen for f in fields},
        )
    return found


def _positive(name: str):
    return models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text=name
    )


class Policy(models.Model):
    organization = models.OneToOneField(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="policy"
    )
    team = models.OneToOneField(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="policy"
    )
    project = models.OneToOneField(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="policy"
    )
    api_key = models.OneToOneField(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="policy"
    )

    # Per request.
    allowed_models = models.JSONField(
        null=True, blank=True, help_text="Public model names; empty: no restriction here."
    )
    max_tokens = _positive("Cap on the output tokens one request may ask for.")
    max_tokens_mode = models.CharField(
        max_length=8, choices=MaxTokensMode.choices, default=MaxTokensMode.CLAMP
    )
    allowed_features = models.JSONField(
        null=True, blank=True, help_text=f"Subset of {', '.join(FEATURES)}; empty: all."
    )
    blocked_terms = models.JSONField(
        default=list,
        blank=True,
        help_text="Terms refused in prompts (case-insensitive, whole words). A denial names "
        "the rule, never the text.",
    )

    # Per tenant.
    monthly_budget_usd = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Spend allowed per calendar month (organization's timezone); empty: none.",
    )
    budget_mode = models.CharField(
        max_length=4, choices=BudgetMode.choices, default=BudgetMode.HARD
    )
    budget_clamp = models.BooleanField(
        default=False,
        help_text="With too little budget left for the request's max_tokens, lower max_tokens "
        "to what fits instead of refusing.",
    )
    rpm = _positive("Requests per minute for this level's whole traffic.")
    tpm = _positive("Tokens per minute for this level's whole traffic.")
    user_rpm = _positive("Requests per minute per end user (`user` / x-gateway-user).")
    user_tpm = _positive("Tokens per minute per end user.")
    allowed_providers = models.JSONField(
        null=True, blank=True, help_text="Provider names; empty: no restriction here."
    )
    allowed_regions = models.JSONField(
        null=True, blank=True, help_text="Regions; empty: no restriction here."
    )
    privacy_mode = models.CharField(
        max_length=8, choices=PrivacyMode.choices, blank=True, help_text="Empty: inherit."
    )
    # The "safety filter": prompts scrubbed of PII before they leave for the provider.
    scrub_prompts = models.BooleanField(
        null=True,
        blank=True,
        help_text="Replace PII in prompts with placeholders before they are sent upstream. "
        "Any level that turns it on wins; empty: inherit.",
    )
    pii_patterns = models.JSONField(
        null=True,
        blank=True,
        help_text='Custom PII patterns, LABEL: regex, e.g. {"EMPLOYEE_ID": "EMP-\\d{6}"}; '
        "found text becomes [LABEL] wherever this policy scrubs. Added to other levels' "
        "patterns (the more specific level wins on a label).",
    )

    # Budget alerts (billing/alerts.py): percent thresholds, and where they go.
    alert_thresholds = models.JSONField(default=list, blank=True)
    alert_emails = models.JSONField(default=list, blank=True)
    # A Slack-style webhook URL is itself a secret: stored encrypted (routing/crypto.py).
    alert_webhook_encrypted = models.TextField(blank=True, editable=False)

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                name="policy_exactly_one_level",
                condition=_exactly_one(LEVELS),
            )
        ]

    def __str__(self) -> str:
        level, target = self.attached_to()
        return f"{level} {target}" if target is not None else "unattached policy"

    def attached_to(self) -> tuple[str, object | None]:
        for level in LEVELS:
            target = getattr(self, level)
            if target is not None:
                return ("key" if level == "api_key" else level), target
        return "", None

    @property
    def alert_webhook_url(self) -> str:
        return crypto.decrypt(self.alert_webhook_encrypted) if self.alert_webhook_encrypted else ""

    @alert_webhook_url.setter
    def alert_webhook_url(self, url: str) -> None:
        self.alert_webhook_encrypted = crypto.encrypt(url) if url else ""

    def clean(self) -> None:
        # The objects, not their ids: on an admin page that adds a key with its policy, the key
        # is not saved yet when the policy is validated.
        attached = [level for level in LEVELS if getattr(self, level) is not None]
        if len(attached) != 1:
            raise ValidationError(
                "a policy belongs to exactly one organization, team, project or key"
            )
        problem = pii_patterns_problem(self.pii_patterns)
        if problem:
            raise ValidationError({"pii_patterns": problem})
        team = None
        if self.api_key is not None:
            team = self.api_key.team
        elif self.project is not None:
            team = self.project.team
        if team is not None:
            problems = narrowing_problems(team, {f: getattr(self, f) for f in NARROWING_FIELDS})
            if problems:
                raise ValidationError(problems)


def pii_patterns_problem(value) -> str | None:
    """Why `value` is not a usable pii_patterns mapping (None: it is, or it is unset)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        return "must map labels to regular expressions (both texts)"
    try:
        compile_patterns(value)
    except ValueError as exc:
        return str(exc)
    return None


# A key's or a project's own limits count its own traffic; above its team's they would only
# mislead (the team's limit binds first), so they may narrow the team's, never exceed them.
NARROWING_FIELDS = ("rpm", "tpm", "monthly_budget_usd")


def narrowing_problems(team: Team, values: dict) -> dict[str, str]:
    """{field: why} for each value above its ceiling: the team's policy's value, else the
    organization's (a team without one is held to its organization's)."""
    ceilings = [
        (f"team '{team.slug}'", Policy.objects.filter(team=team).first()),
        (
            f"organization '{team.organization.slug}'",
            Policy.objects.filter(organization_id=team.organization_id).first(),
        ),
    ]
    problems = {}
    for name, value in values.items():
        if value is None:
            continue
        for owner, policy in ceilings:
            ceiling = getattr(policy, name) if policy is not None else None
            if ceiling is None:
                continue
            if value > ceiling:
                shown = f"${ceiling:.2f}" if name == "monthly_budget_usd" else ceiling
                problems[name] = (
                    f"may not exceed {shown}, set by {owner} "
                    "(a key's or project's limit can only narrow its team's)"
                )
            break
    return problems


class ModelLimit(models.Model):
    """RPM/TPM for one public model, across an organization or within one team."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="model_limits"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="model_limits"
    )
    model = models.CharField(max_length=200)
    rpm = _positive("Requests per minute for this model.")
    tpm = _positive("Tokens per minute for this model.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="model_limit_one_owner",
                condition=models.Q(organization__isnull=False, team__isnull=True)
                | models.Q(organization__isnull=True, team__isnull=False),
            ),
            models.UniqueConstraint(fields=["organization", "model"], name="uniq_org_model_limit"),
            models.UniqueConstraint(fields=["team", "model"], name="uniq_team_model_limit"),
        ]
        ordering = ["model"]

    def __str__(self) -> str:
        owner = self.team or self.organization
        return f"{self.model} in {owner}"
