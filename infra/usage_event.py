"""The usage event: what a web process emits per request and what ingestion stores as a row.

Defined once, here, and used by the producer (gateway/proxy/context.py), the consumers
(billing/ingest.py, billing/writer.py) and the tests. A missing or unknown field is an error
(`forbid_unknown_fields`), so a schema change cannot silently drop data.

Every event must insert: a value longer than its column (a 201-character model name, a long
upstream error code) is truncated here, and counters are clamped to their column's range, so the
database never refuses a row. billing's tests check these limits against the model's columns.
"""

from decimal import Decimal

import msgspec

# Column sizes of billing.UsageRecord (tests/test_usage_event.py keeps them in step).
STR_LIMITS: dict[str, int] = {
    "request_id": 64,
    "team_slug": 50,
    "key_prefix": 16,
    "endpoint": 32,
    "requested_model": 200,
    "provider_name": 100,
    "upstream_model": 200,
    "region": 50,
    "error_type": 64,
    "fallbacks": 500,
    "compliance_basis": 200,
}
_POSITIVE_INT = 2_147_483_647
_SMALL_INT = 32_767
INT_LIMITS: dict[str, int] = {
    "input_tokens": _POSITIVE_INT,
    "output_tokens": _POSITIVE_INT,
    "cached_tokens": _POSITIVE_INT,
    "reserved_tokens": _POSITIVE_INT,
    "attempts": _SMALL_INT,
    "status_code": _SMALL_INT,
    "redactions": _POSITIVE_INT,
}


class Content(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What the team's privacy mode keeps of the content (billing.UsageContent).

    Built in the web process, after scrubbing or hashing, so raw text of a `metadata`, `hashed`
    or `redacted` team never reaches the stream, the spool or the database.
    """

    mode: str  # hashed | redacted | full
    prompt_hmac: str = ""
    response_hmac: str = ""
    hmac_key_id: str = ""
    prompt: str = ""
    response: str = ""
    redactions: dict[str, int] = msgspec.field(default_factory=dict)


class UsageEvent(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    request_id: str
    created_at: float  # epoch seconds, when the request arrived
    organization_id: int | None
    team_id: int | None
    team_slug: str
    project_id: int | None
    api_key_id: int | None
    key_prefix: str
    user_id: int | None
    endpoint: str
    requested_model: str
    deployment_id: int | None
    provider_id: int | None
    provider_name: str
    upstream_model: str
    region: str
    stream: bool
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    usage_estimated: bool
    latency_ms: float
    upstream_ms: float
    ttft_ms: float | None
    attempts: int
    status_code: int
    error_type: str
    cost_usd: Decimal  # encoded as a string: exact
    # Tokens admission reserved against TPM limits (prompt estimate + output asked for); 0 when
    # no limit applied. Above input + output, the estimate was generous; below, an
    # under-estimate (settlement charged the difference). A default, so events written before
    # the field existed still decode.
    reserved_tokens: int = 0
    # The attempts that failed, in order: "provider/model: error kind"
    # joined by "; " (also the x-gateway-fallbacks header). Empty when no attempt failed.
    fallbacks: str = ""
    # The agreements that allowed the call under the team's compliance requirements (the
    # route's, compliance/snapshot.py), e.g. "dpa:12 openai-eu (hipaa)"; "" when none applied.
    compliance_basis: str = ""
    # Cost allocation tags, validated by the proxy (gateway/proxy/tags.py): key -> value.
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    # PII placeholders put into the prompt before it went upstream (policy scrub_prompts).
    redactions: int = 0
    # None in the `metadata` privacy mode (the default): no content at all.
    content: Content | None = None

    def __post_init__(self) -> None:
        for name, limit in STR_LIMITS.items():
            value = getattr(self, name)
            if len(value) > limit:
                setattr(self, name, value[:limit])
        for name, limit in INT_LIMITS.items():
            value = getattr(self, name)
            if not 0 <= value <= limit:
                setattr(self, name, min(max(value, 0), limit))


class _Tolerant(UsageEvent, forbid_unknown_fields=False):
    """Reads an event from a newer producer (a rolling upgrade) that carries extra fields."""


_encoder = msgspec.json.Encoder()
_strict = msgspec.json.Decoder(UsageEvent)
_tolerant = msgspec.json.Decoder(_Tolerant)


def encode(event: UsageEvent) -> bytes:
    return _encoder.encode(event)


def decode(raw: bytes, *, tolerate_unknown: bool = False) -> UsageEvent:
    """Raises msgspec.ValidationError (missing field, wrong type) or msgspec.DecodeError."""
    try:
        return _strict.decode(raw)
    except msgspec.ValidationError:
        if not tolerate_unknown:
            raise
        return _tolerant.decode(raw)


ValidationError = msgspec.ValidationError
DecodeError = msgspec.DecodeError
