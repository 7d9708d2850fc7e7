"""How a request to the API says who it is: a personal access token, or the portal's session.

`Authorization: Bearer gwp_...` is looked up by its SHA-256 (never the token itself). An
unknown, expired or revoked token is a 401 (with WWW-Authenticate), never a fall-back to the
session: a client that sent a token meant it. Without the header, DRF's SessionAuthentication
takes over, which enforces CSRF on unsafe methods.
"""

from rest_framework import authentication, exceptions

from . import tokens
from .models import PersonalAccessToken
from .services import pat_mark_used

KEYWORD = "Bearer"


class PersonalAccessTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != KEYWORD.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header is Bearer <token>")
        try:
            presented = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        if not presented.startswith(tokens.TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("invalid token")
        token = (
            PersonalAccessToken.objects.select_related("user")
            .filter(token_hash=tokens.hash_token(presented))
            .first()
        )
        # One message for every failure: which of them it was is no business of the caller's.
        if token is None or not token.is_active or not token.user.is_active:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked token")
        pat_mark_used(token=token)
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return f'{KEYWORD} realm="api"'
