"""Where requests go: providers (accounts at an LLM vendor) and their model deployments."""

import ipaddress
from decimal import Decimal
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from .capabilities import Capabilities, capabilities_of
from .credentials import Credentials, decrypt_credentials, encrypt_credentials
from .groups import FALLBACK_FIELDS, fallback_list_problems
from .kinds import KINDS
from .regions import region_problem

# Timeout defaults (docs/providers.md). Conservative: a non-streamed answer's first byte comes
# only once the whole completion is generated, and some models think for minutes in silence.
DEFAULT_FIRST_BYTE_TIMEOUT_S = 300.0
DEFAULT_IDLE_TIMEOUT_S = 300.0
DEFAULT_ATTEMPT_TIMEOUT_S = 600.0
TIMEOUT_FIELDS = (
    "connect_timeout_s",
    "first_byte_timeout_s",
    "idle_timeout_s",
    "attempt_timeout_s",
)
_TIMEOUT_HELP = {
    "connect_timeout_s": "Seconds to open a connection.",
    "first_byte_timeout_s": (
        "Seconds from sending a request to the first byte of the answer: the response of a "
        "non-streamed request (which starts only once it is complete), the first chunk of a "
        "stream. Expiring falls back to the next deployment."
    ),
    "idle_timeout_s": "Seconds without data between two chunks of an answer.",
    "attempt_timeout_s": (
        "Seconds for one attempt at this provider, from sending to the last byte (a whole "
        "stream included)."
    ),
}


_REGION_HELP = (
    "Where it runs: eu, uk, us, ca, ap, sa, me, af, on-prem or a sub-region (eu-west, "
    "us-east, ...), or a cloud region id that maps to one (us-east-1, westeurope, europe-west4)."
)


def _timeout_field(name: str, default: float | None, empty_means: str) -> models.FloatField:
    help_text = _TIMEOUT_HELP[name] + (f" Empty: {empty_means}." if empty_means else "")
    return models.FloatField(
        null=default is None,
        blank=default is None,
        default=default,
        validators=[MinValueValidator(0.1)],
        help_text=help_text,
    )


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback  # 127.0.0.0/8, ::1
    except ValueError:
        return False


def api_base_problem(api_base: str, allow_insecure_http: bool) -> str | None:
    """Why this base URL may not be used, or None.

    Prompts and credentials travel to it: https, except plain http to this machine (a vLLM or
    Ollama beside the gateway) or where an admin said so for this provider.
    """
    if not api_base:
        return None
    parts = urlsplit(api_base)
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None
    if scheme != "http":
        return "api_base must be an https:// URL"
    if allow_insecure_http or is_loopback(parts.hostname):
        return None
    return (
        "api_base must use https://; plain http is allowed only to this machine (localhost, "
        "127.0.0.0/8, ::1) or with allow_insecure_http"
    )


class Provider(models.Model):
    # Built from the one table of kinds (routing/kinds.py): Provider.Kind.OPENAI, ...
    Kind = models.TextChoices("Kind", {k.value.upper(): (k.value, k.label) for k in KINDS})

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    api_base = models.URLField(
        max_length=500,
        blank=True,
        help_text="Base URL including /v1 (Azure OpenAI: the resource's endpoint, "
        "https://<resource>.openai.azure.com); outbound URLs come only from here.",
    )
    allow_insecure_http = models.BooleanField(
        default=False,
        help_text="Allow a plain http:// base URL to another machine. Prompts and the "
        "credential then cross the network unencrypted: only for a trusted private network.",
    )
    # One Fernet token of the whole credential object (routing/credentials.py); the plaintext
    # never touches the database. Use set_credentials().
    credentials_encrypted = models.TextField(blank=True, editable=False)
    region = models.CharField(max_length=50, blank=True, help_text=_REGION_HELP)
    # The one timeout that had a process-wide setting keeps it as its default.
    connect_timeout_s = _timeout_field(
        "connect_timeout_s", None, "GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S (5)"
    )
    first_byte_timeout_s = _timeout_field("first_byte_timeout_s", DEFAULT_FIRST_BYTE_TIMEOUT_S, "")
    idle_timeout_s = _timeout_field("idle_timeout_s", DEFAULT_IDLE_TIMEOUT_S, "")
    attempt_timeout_s = _timeout_field("attempt_timeout_s", DEFAULT_ATTEMPT_TIMEOUT_S, "")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problem = api_base_problem(self.api_base, self.allow_insecure_http)
        if problem:
            raise ValidationError({"api_base": problem})
        if problem := region_problem(self.region):
            raise ValidationError({"region": problem})
        # The adapter adds /openai/deployments/...; an endpoint copied with /openai (or Azure's
        # newer /openai/v1) would be asked for /openai/openai/..., a 404 that looks like a key
        # problem. A path before it is fine (an API gateway in front of the resource).
        if self.kind == "azure_openai" and "openai" in urlsplit(self.api_base).path.split("/"):
            raise ValidationError(
                {
                    "api_base": "the resource's endpoint without /openai, e.g. "
                    "https://my-resource.openai.azure.com (the gateway adds the rest)"
                }
            )

    def set_credentials(self, parts: dict[str, str]) -> None:
        """Replace the whole credential (empty parts dropped; nothing left: none stored)."""
        self.credentials_encrypted = encrypt_credentials(parts)

    def get_credentials(self) -> Credentials:
        """Raises ValueError when the stored token cannot be read with the configured keys."""
        return decrypt_credentials(self.credentials_encrypted)

    # The common case, one API key.
    def set_api_key(self, plaintext: str) -> None:
        self.set_credentials({"api_key": plaintext})

    def get_api_key(self) -> str:
        return self.get_credentials().get("api_key", "")

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)


class Deployment(models.Model):
    """One provider's model serving one public model name."""

    class Mode(models.TextChoices):
        CHAT = "chat", "Chat completions"
        EMBEDDING = "embedding", "Embeddings"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="deployments")
    model_name = models.CharField(max_length=200, help_text="Public name apps ask for.")
    upstream_model = models.CharField(max_length=200, help_text="The provider's model id.")
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CHAT)
    # USD per 1M tokens. tokens x price is then exactly the cost in micro-dollars.
    input_cost_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    output_cost_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(0)]
    )
    # Capabilities (routing/capabilities.py explains the defaults). Enforced per request: one
    # that needs what no deployment of its model has is refused with 400 naming it.
    context_window = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Tokens of prompt plus answer the model takes. Empty: unknown, not checked.",
    )
    max_output_tokens = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Most tokens one answer may have. Empty: unknown, not checked.",
    )
    supports_tools = models.BooleanField(
        "tools", default=True, help_text="Takes tools / tool_choice (function calling)."
    )
    supports_vision = models.BooleanField(
        "vision", default=True, help_text="Takes images in messages (image_url content parts)."
    )
    supports_json_mode = models.BooleanField(
        "JSON mode",
        default=True,
        help_text="Takes response_format of type json_object or json_schema.",
    )
    supports_streaming = models.BooleanField(
        "streaming", default=True, help_text="Can stream its answer (stream: true)."
    )
    region = models.CharField(
        max_length=50, blank=True, help_text=_REGION_HELP + " Empty: the provider's."
    )
    # Routing within the model's group (routing/strategies.py).
    weight = models.PositiveIntegerField(
        default=1, help_text="Share of traffic under the weighted strategy (0: only as fallback)."
    )
    priority = models.IntegerField(
        default=0, help_text="Order under the priority strategy: lower is tried first."
    )
    # Empty: the provider's. One slow model at a fast provider gets its own limits.
    connect_timeout_s = _timeout_field("connect_timeout_s", None, "the provider's")
    first_byte_timeout_s = _timeout_field("first_byte_timeout_s", None, "the provider's")
    idle_timeout_s = _timeout_field("idle_timeout_s", None, "the provider's")
    attempt_timeout_s = _timeout_field("attempt_timeout_s", None, "the provider's")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "model_name", "upstream_model"], name="uniq_deployment"
            )
        ]
        ordering = ["model_name", "provider__name"]

    def __str__(self) -> str:
        return f"{self.model_name} → {self.provider.name}/{self.upstream_model}"

    def clean(self) -> None:
        if problem := region_problem(self.region):
            raise ValidationError({"region": problem})
        if (
            self.max_output_tokens is not None
            and self.context_window is not None
            and self.max_output_tokens > self.context_window
        ):
            raise ValidationError(
                {
                    "max_output_tokens": f"More than the context window ({self.context_window}), "
                    "which holds the prompt and the answer."
                }
            )

    @property
    def effective_region(self) -> str:
        return self.region or self.provider.region

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_of(self)


class ModelGroup(models.Model):
    """How a public model name's deployments are chosen, and where it falls back to.

    A name without a row is a group with the defaults: cheapest, no fallbacks.
    """

    class Strategy(models.TextChoices):
        CHEAPEST = "cheapest", "Cheapest capable"
        LATENCY = "latency", "Lowest recent latency"
        WEIGHTED = "weighted", "Weighted random"
        PRIORITY = "priority", "Priority order"

    name = models.CharField(max_length=200, help_text="The public model name apps ask for.")
    mode = models.CharField(
        max_length=16, choices=Deployment.Mode.choices, default=Deployment.Mode.CHAT
    )
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.CHEAPEST)
    fallbacks = models.JSONField(
        default=list,
        blank=True,
        help_text='Groups tried when all of this one fail, in order, e.g. ["large"].',
    )
    context_fallbacks = models.JSONField(
        default=list,
        blank=True,
        help_text='Groups tried on a context-length error, e.g. ["long-context"].',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mode", "name"], name="uniq_model_group")]
        ordering = ["mode", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:

        errors = fallback_problems(self.name, self.mode, self.fallbacks, self.context_fallbacks)
        if errors:
            raise ValidationError(errors)


class RoutingRule(models.Model):
    """Send a request for `model` from a team, or with an `x-gateway-route-tag` header, to
    another group. Rules are tried by `position` (then id); the first that matches wins."""

    position = models.PositiveIntegerField(default=0, help_text="Lower is tried first.")
    team = models.ForeignKey(
        "tenants.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    tag = models.CharField(
        max_length=100, blank=True, help_text="Value of the x-gateway-route-tag header."
    )
    model = models.CharField(max_length=200, help_text='The requested model name; "*": any.')
    group = models.CharField(max_length=200, help_text="The model group to send it to.")
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="routing_rule_team_xor_tag",
                condition=(models.Q(team__isnull=False) & models.Q(tag=""))
                | (models.Q(team__isnull=True) & ~models.Q(tag="")),
            )
        ]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        who = f"team {self.team.slug}" if self.team_id else f"tag {self.tag}"
        return f"{who}: {self.model} -> {self.group}"

    def clean(self) -> None:
        if bool(self.team_id) == bool(self.tag):
            raise ValidationError("Give a team or a tag, not both and not neither.")
        if not group_exists(self.group):
            raise ValidationError({"group": f"{self.group!r} names no model group"})


def group_names(mode: str | None = None) -> set[str]:
    """Every group name (of `mode`, or of any mode): rows and deployments' model names."""
    groups = ModelGroup.objects.order_by()
    deployments = Deployment.objects.order_by()
    if mode is not None:
        groups, deployments = groups.filter(mode=mode), deployments.filter(mode=mode)
    return set(groups.values_list("name", flat=True)) | set(
        deployments.values_list("model_name", flat=True)
    )


def group_exists(name: str) -> bool:
    return name in group_names()


def fallback_problems(name: str, mode: str, fallbacks, context_fallbacks) -> dict[str, str]:
    """The admin's check: field -> message (the first problem of each list)."""
    known = group_names(mode)
    errors: dict[str, str] = {}
    for field, value in zip(FALLBACK_FIELDS, (fallbacks, context_fallbacks), strict=True):
        problems = fallback_list_problems(name, field, value, known)
        if problems:
            errors[field] = "; ".join(message for _, message in problems)
    return errors


# Health check history (routing/health_models.py): its own module, imported here so Django
# finds its models in this app.
from .health_models import DeploymentHealth, HealthCheck  # noqa: E402, F401
