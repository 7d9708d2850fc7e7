"""Provider credentials at rest: Fernet (AES-128-CBC + HMAC) with rotation via MultiFernet."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k.encode()) for k in settings.GATEWAY_ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Never include the token: the message may end up in a log.
        raise ValueError("credential cannot be decrypted with GATEWAY_ENCRYPTION_KEYS") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the newest key (after adding one to GATEWAY_ENCRYPTION_KEYS); every
    stored token at once: manage.py rotatekeys (gateway/keyrotation.py)."""
    return _fernet().rotate(token.encode()).decode() if token else ""
