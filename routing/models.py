"""Where requests go: providers (accounts at an LLM vendor) and their model deployments."""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models

from . import crypto
from .kinds import KINDS


class Provider(models.Model):
    # Built from the one table of kinds (routing/kinds.py): Provider.Kind.OPENAI, ...
    Kind = models.TextChoices("Kind", {k.value.upper(): (k.value, k.label) for k in KINDS})

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    api_base = models.URLField(
        max_length=500,
        blank=True,
        help_text="Base URL including /v1; outbound URLs come only from here.",
    )
    # Fernet token; the plaintext never touches the database. Use set_api_key().
    api_key_encrypted = models.TextField(blank=True, editable=False)
    region = models.CharField(max_length=50, blank=True)
    timeout_s = models.FloatField(default=600.0, validators=[MinValueValidator(0.1)])
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_api_key(self, plaintext: str) -> None:
        self.api_key_encrypted = crypto.encrypt(plaintext)

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


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
    context_window = models.PositiveIntegerField(null=True, blank=True)
    # Empty: the provider's region.
    region = models.CharField(max_length=50, blank=True)
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

    @property
    def effective_region(self) -> str:
        return self.region or self.provider.region
