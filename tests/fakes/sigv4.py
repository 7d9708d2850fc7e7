"""AWS Signature Version 4, checked the way AWS checks it, for the Bedrock fake.

The fake knows the secret, so it recomputes the signature of what it received with botocore's
own SigV4Auth (the signer adapters use) and compares. The canonical request is built from the
path exactly as it came over the wire: AWS encodes it once more for every service but S3, so
a client that signs `.../v1:0/converse` but sends `.../v1%3A0/converse` is refused, as it
would be by AWS. Failures answer like AWS: 403 with x-amzn-ErrorType
MissingAuthenticationTokenException, UnrecognizedClientException (unknown key id or security
token) or InvalidSignatureException (bad scope, expired date, wrong signature), 400
IncompleteSignatureException for an unreadable header.
Reference: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv4-troubleshooting.html
"""

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .base import ReceivedRequest

SKEW = timedelta(minutes=5)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class SigV4Failure:
    status: int
    error_type: str
    message: str


@dataclass(frozen=True)
class AwsCredentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def signed_headers(
    method: str,
    url: str,
    body: bytes,
    credentials: AwsCredentials,
    *,
    region: str,
    service: str = "bedrock",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers that sign a request with botocore's SigV4Auth, as a Bedrock client would: for
    tests that call the fake with plain httpx. Send to exactly `url`."""
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={"content-type": "application/json", **(headers or {})},
    )
    signer = SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key, credentials.session_token),
        service,
        region,
    )
    signer.add_auth(request)
    return dict(request.headers.items())


def verify(
    request: ReceivedRequest,
    credentials: AwsCredentials,
    *,
    region: str,
    service: str = "bedrock",
    now: datetime | None = None,
) -> SigV4Failure | None:
    header = request.headers.get("authorization")
    if not header:
        return SigV4Failure(
            403, "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    found = _AUTH.match(header)
    if found is None:
        return SigV4Failure(
            400,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters. Authorization={header.split(' ')[0]}",
        )
    invalid = "The security token included in the request is invalid."
    if found["key"] != credentials.access_key:
        return SigV4Failure(403, "UnrecognizedClientException", invalid)
    if request.headers.get("x-amz-security-token") != credentials.session_token:
        return SigV4Failure(403, "UnrecognizedClientException", invalid)
    stamp = request.headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return SigV4Failure(
            400,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    wrong = _scope_error(found, stamp, region, service)
    if wrong:
        return SigV4Failure(403, "InvalidSignatureException", wrong)
    now = now or datetime.now(UTC)
    if signed_at < now - SKEW:
        earliest = (now - SKEW).strftime("%Y%m%dT%H%M%SZ")
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({now.strftime('%Y%m%dT%H%M%SZ')} - 5 min.)",
        )
    if signed_at > now + SKEW:
        return SigV4Failure(403, "InvalidSignatureException", "Signature not yet current")
    names = found["headers"].split(";")
    if "host" not in names:
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    expected = _signature(request, names, credentials, region, service, stamp)
    if not hmac.compare_digest(expected, found["signature"]):
        return SigV4Failure(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return None


def _scope_error(found: re.Match, stamp: str, region: str, service: str) -> str | None:
    if found["date"] != stamp[:8]:
        return (
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{found['date']}' != '{stamp[:8]}', from '{stamp}'."
        )
    if found["region"] != region:
        return f"Credential should be scoped to a valid region. Expected '{region}'."
    if found["service"] != service:
        return f"Credential should be scoped to correct service: '{service}'. "
    return None


def _signature(request, names, credentials, region, service, stamp) -> str:
    headers = {name: request.headers[name] for name in names if name in request.headers}
    query = "&".join(f"{k}={v}" for k, v in request.query.items())
    url = f"http://{request.headers.get('host', '')}{request.raw_path}"
    aws_request = AWSRequest(
        method=request.method,
        url=url + (f"?{query}" if query else ""),
        headers=headers,
        data=request.raw_body,
    )
    aws_request.context["timestamp"] = stamp
    signer = SigV4Auth(
        Credentials(credentials.access_key, credentials.secret_key, credentials.session_token),
        service,
        region,
    )
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
