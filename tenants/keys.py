"""API key secrets: generation and hashing. The only module that sees a raw secret."""

import hashlib
import secrets

KEY_PREFIX = "sk-gw-"
# 32 bytes of randomness (256 bits), URL-safe base64 without padding: 43 characters.
_RANDOM_BYTES = 32
SHOWN_PREFIX_LEN = len(KEY_PREFIX) + 6


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_secret(secret: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so there is nothing for a
    # slow KDF to protect, and the hot path hashes on every request.
    return hashlib.sha256(secret.encode()).hexdigest()


def shown_prefix(secret: str) -> str:
    return secret[:SHOWN_PREFIX_LEN]
