"""Personal access token secrets: generation and hashing. The only module that sees a raw one.

Like API keys (tenants/keys.py): 256 random bits, stored as SHA-256 only. A distinct prefix,
"gwp_", so a leaked token is recognisable as a management token (not a gateway key) by secret
scanners and by people.
"""

import hashlib
import secrets

TOKEN_PREFIX = "gwp_"  # noqa: S105 (a public marker, not a secret)
_RANDOM_BYTES = 32
SHOWN_PREFIX_LEN = len(TOKEN_PREFIX) + 8


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_token(token: str) -> str:
    # A fast hash is right: 256 bits of entropy leave nothing for a slow KDF to protect.
    return hashlib.sha256(token.encode()).hexdigest()


def shown_prefix(token: str) -> str:
    return token[:SHOWN_PREFIX_LEN]
