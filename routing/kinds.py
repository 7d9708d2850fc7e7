"""Provider kinds, declared once: the model's choices, the adapter registry, loadconfig's
vocabulary and the admin's validation all read this table.

Each kind also declares the shape of its credential: which parts it takes, which it needs, and
whether it may have none at all. The credential is stored encrypted as a whole (one Fernet
token of a JSON object, routing/credentials.py); loadconfig and the admin validate against the
shape, and the routing table leaves out a provider whose stored credential lacks a part.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CredentialPart:
    name: str  # the key in the credential object, in YAML and in the admin form
    label: str
    # A secret is never shown again (write-only in the admin, named without its value in
    # loadconfig's report) and is scrubbed from relayed upstream text. A part that is not
    # secret is shown like any setting, and never scrubbed: replacing an API version such as
    # "2024-10-21" in model output would garble answers and protect nothing.
    secret: bool = True


API_KEY = CredentialPart("api_key", "API key")
# Not a secret: it selects the version of Azure's API contract, like a URL path would.
API_VERSION = CredentialPart("api_version", "API version", secret=False)
# The access key id alone grants nothing, but it names an account: treated as a secret, which
# costs nothing (it never appears in ordinary text).
AWS_ACCESS_KEY_ID = CredentialPart("aws_access_key_id", "AWS access key id")
AWS_SECRET_ACCESS_KEY = CredentialPart("aws_secret_access_key", "AWS secret access key")
AWS_SESSION_TOKEN = CredentialPart("aws_session_token", "AWS session token")

# Every part any shape may use, by name.
PARTS: dict[str, CredentialPart] = {
    p.name: p
    for p in (API_KEY, API_VERSION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
}


@dataclass(frozen=True)
class CredentialShape:
    required: tuple[CredentialPart, ...] = ()
    optional: tuple[CredentialPart, ...] = ()
    # Whether the credential may be left out altogether, and what that means. Given at all, it
    # must then have every required part.
    may_be_empty: bool = False
    empty_means: str = ""

    @property
    def parts(self) -> tuple[CredentialPart, ...]:
        return self.required + self.optional

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts)

    def missing(self, given: set[str] | frozenset[str]) -> list[str]:
        """The required parts not given (none when nothing is given and that is allowed)."""
        if not given and self.may_be_empty:
            return []
        return [p.name for p in self.required if p.name not in given]

    def unknown(self, given: set[str] | frozenset[str]) -> list[str]:
        return sorted(given - set(self.names))

    def describe(self) -> str:
        """For help texts and error messages: "api_key, api_version", "(none)", ..."""
        if not self.parts:
            return "none"
        text = ", ".join(
            [p.name for p in self.required] + [f"{p.name} (optional)" for p in self.optional]
        )
        if self.may_be_empty:
            text += f"; or none ({self.empty_means})"
        return text


# One API key, or none for a server without auth (a local vLLM, Ollama): no credential header.
OPTIONAL_API_KEY = CredentialShape(
    required=(API_KEY,), may_be_empty=True, empty_means="requests carry no credential"
)
NO_CREDENTIALS = CredentialShape()
# A hosted API that refuses every request without its key: a missing key is a config error.
API_KEY_REQUIRED = CredentialShape(required=(API_KEY,))
AZURE_OPENAI_CREDENTIALS = CredentialShape(required=(API_KEY, API_VERSION))
# For an AWS kind (Bedrock): access key id and secret (and a session token for temporary
# credentials), or none at all, and then the standard AWS credential chain of the gateway's
# environment (environment variables, shared config, instance or task role) signs requests.
AWS_CREDENTIALS = CredentialShape(
    required=(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
    optional=(AWS_SESSION_TOKEN,),
    may_be_empty=True,
    empty_means="the AWS credential chain of the gateway's environment",
)


@dataclass(frozen=True)
class ProviderKind:
    value: str  # stored in Provider.kind and written in YAML
    label: str
    adapter: str  # "module:Class", imported on first use (never from request or config data)
    needs_api_base: bool = False  # no default endpoint: the admin must give one
    # Most kinds take one API key; a kind says so when it takes something else.
    credentials: CredentialShape = OPTIONAL_API_KEY
    # Requests are signed for one region (AWS): a deployment whose region (its own, else its
    # provider's) is empty cannot be called, and the routing table leaves it out.
    needs_region: bool = False
    # The provider serves an embeddings API; an embedding deployment on one that does not is
    # refused by loadconfig and left out of routing (its callers get a clear 404).
    embeddings: bool = True


KINDS: tuple[ProviderKind, ...] = (
    ProviderKind("openai", "OpenAI", "routing.providers.openai:OpenAIAdapter"),
    ProviderKind(
        "openai_compatible",
        "OpenAI-compatible (vLLM, Ollama, Mistral, Groq…)",
        "routing.providers.openai:OpenAICompatibleAdapter",
        needs_api_base=True,
    ),
    ProviderKind(
        "anthropic",
        "Anthropic",
        "routing.providers.anthropic:AnthropicAdapter",
        credentials=API_KEY_REQUIRED,
        embeddings=False,
    ),
    ProviderKind(
        "gemini",
        "Google Gemini",
        "routing.providers.gemini:GeminiAdapter",
        credentials=API_KEY_REQUIRED,
    ),
    ProviderKind(
        "azure_openai",
        "Azure OpenAI",
        "routing.providers.azure_openai:AzureOpenAIAdapter",
        # The resource's endpoint, https://<resource>.openai.azure.com: there is no default.
        needs_api_base=True,
        credentials=AZURE_OPENAI_CREDENTIALS,
    ),
    ProviderKind(
        "bedrock",
        "Amazon Bedrock",
        "routing.providers.bedrock:BedrockAdapter",
        # https://bedrock-runtime.{region}.amazonaws.com by default.
        credentials=AWS_CREDENTIALS,
        needs_region=True,
    ),
    ProviderKind(
        "mock",
        "Mock (built-in fake model for demos and tests)",
        "routing.providers.mock:MockAdapter",
        credentials=NO_CREDENTIALS,
    ),
)
BY_VALUE: dict[str, ProviderKind] = {k.value: k for k in KINDS}


def kind_choices() -> list[tuple[str, str]]:
    return [(k.value, k.label) for k in KINDS]


def needs_api_base(kind: str) -> bool:
    found = BY_VALUE.get(kind)
    return found is not None and found.needs_api_base


def needs_region(kind: str) -> bool:
    found = BY_VALUE.get(kind)
    return found is not None and found.needs_region


def serves_embeddings(kind: str) -> bool:
    found = BY_VALUE.get(kind)
    return found is None or found.embeddings


def credential_shape(kind: str) -> CredentialShape | None:
    found = BY_VALUE.get(kind)
    return found.credentials if found is not None else None


def credential_parts_in_use() -> tuple[CredentialPart, ...]:
    """Every part some kind takes, in a stable order: the admin offers a field for each."""
    used = {name for k in KINDS for name in k.credentials.names}
    return tuple(p for name, p in PARTS.items() if name in used)
