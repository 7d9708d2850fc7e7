"""PII scrubbing: emails, phones, cards, IBANs, national IDs, IPs and secrets -> placeholders.

`scrub(text)` returns the text with each finding replaced by a typed placeholder (`[EMAIL]`,
`[PHONE]`, `[CARD]`, `[IBAN]`, `[NATIONAL_ID]`, `[IP]`, `[SECRET]`, or `[NAME]` for a custom
pattern) and the count of findings per type. It is pure CPU: no network, no model, no I/O.

How it works: every detector runs once over the ORIGINAL text and proposes spans; overlapping
spans are resolved by detector priority (the most specific detector wins: a card number is not
also reported as a phone number, a key inside a URL is a secret rather than an IP), and the text
is rebuilt in one pass. Each detector keeps its regexes precompiled and skips the text entirely
when a cheap substring test shows it cannot match. Shapes that collide with everyday numbers are
confirmed by a checksum (Luhn, IBAN mod 97, the national ID check digits of python-stdnum) or by
the phonenumbers metadata, which is what keeps order numbers, timestamps and ids intact.

Any exception inside a detector surfaces as `ScrubError`: a caller that was going to store the
scrubbed text must then store nothing, never the raw text.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.de import idnr as de_idnr
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.fr import nir as fr_nir
from stdnum.it import codicefiscale as it_cf
from stdnum.nl import bsn as nl_bsn
from stdnum.us import ssn as us_ssn

DEFAULT_PHONE_REGION = "US"
_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")

Span = tuple[int, int, str]  # start, end, placeholder label


class ScrubError(Exception):
    """A detector failed: the text must be treated as unscrubbed (store nothing)."""


@dataclass(frozen=True, slots=True)
class Scrubbed:
    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --- secrets ---------------------------------------------------------------------------------
# (substrings one of which must be present, pattern, group holding the secret). Vendor key shapes
# have fixed prefixes, so the substring test skips almost every text for almost every pattern.
# Needles are lowercase and tested against the lowercased text: a superset, never a miss.
_TOKEN_CHARS = r"A-Za-z0-9_\-"  # noqa: S105 (a character class, not a password)
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], int], ...] = (
    (
        ("private key",),
        re.compile(
            r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
            # Lazy to the matching END line; a truncated block is scrubbed to the end of the text.
            r"[\s\S]*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
        0,
    ),
    (("sk-",), re.compile(rf"(?<![{_TOKEN_CHARS}])sk-(?:ant-)?[{_TOKEN_CHARS}]{{20,}}"), 0),
    (("k_live_", "k_test_"), re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), 0),
    (("akia", "asia", "abia", "acca"), re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0),
    (
        ("gh", "github_pat_"),
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_\w{22,255})"),
        0,
    ),
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), 0),
    (("eyj",), re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), 0),
    (("aiza",), re.compile(rf"\bAIza[{_TOKEN_CHARS}]{{35}}(?![{_TOKEN_CHARS}])"), 0),
    (
        ("bearer",),
        # The token may hold dots (a JWT) but not end with one: that is the sentence's.
        re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{15,}[A-Za-z0-9_~+/=-])"),
        1,
    ),
    (
        # `password = "..."`, `"api_key": "..."`, `AWS_SECRET_ACCESS_KEY=...`: the value only.
        ("key", "secret", "token", "pass", "pwd"),
        re.compile(
            # No leading \b: "aws_secret_access_key" and "DB_PASSWORD" end with the keyword, and
            # a prefix group tried at every word start cost more than all other secret patterns.
            r"(?i)(?:api[_-]?key|secret(?:[_-]?access)?(?:[_-]?key)?|"
            r"access[_-]?token|auth[_-]?token|client[_-]?secret|password|passwd|pwd)"
            r"""["']?\s{0,3}[:=]\s{0,3}["']?([^\s"',;]{8,200})"""
        ),
        1,
    ),
)


def _secret_spans(text: str, lower: str) -> Iterator[Span]:
    for needles, pattern, group in _SECRET_PATTERNS:
        if not any(n in lower for n in needles):
            continue
        for m in pattern.finditer(text):
            value = m.group(group)
            # Generic shapes (sk-..., bearer, key = value) need a digit: "sk-learn-is-a-library"
            # or "password: mandatory" are words, real keys almost always carry digits.
            generic = group or value.startswith("sk-")
            if generic and not any(c.isdigit() for c in value):
                continue
            yield m.start(group), m.end(group), "SECRET"


# --- email -----------------------------------------------------------------------------------
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)


def _email_spans(text: str) -> Iterator[Span]:
    if "@" not in text:
        return
    for m in _EMAIL_RE.finditer(text):
        yield m.start(), m.end(), "EMAIL"


# --- payment cards ---------------------------------------------------------------------------
# 13-19 digits, optionally grouped by single spaces or dashes (one kind throughout).
_CARD_RE = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d])(?![.,]\d)")
# Issuer prefixes of the networks in use (Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro): a Luhn-valid number with another first digit is far more often an id.
_CARD_IIN_RE = re.compile(r"4|5[0-8]|2[2-7]|3[0456789]|6")


def _card_spans(text: str) -> Iterator[Span]:
    for m in _CARD_RE.finditer(text):
        raw = m.group()
        if " " in raw and "-" in raw:
            continue
        digits = raw.replace(" ", "").replace("-", "")
        if _CARD_IIN_RE.match(digits) and luhn.is_valid(digits):
            yield m.start(), m.end(), "CARD"


# --- IBAN ------------------------------------------------------------------------------------
# Compact, or printed in groups of four; the checksum (ISO 7064 mod 97) and the country's length
# and format (python-stdnum) decide. Greedy grouping can swallow a following short word
# ("... 00 AND"), so on a failed check the last group is dropped and the check retried.
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def _iban_spans(text: str) -> Iterator[Span]:
    for m in _IBAN_RE.finditer(text):
        raw = m.group()
        for _ in range(3):
            if stdnum_iban.is_valid(raw):
                yield m.start(), m.start() + len(raw), "IBAN"
                break
            cut = raw.rfind(" ")
            if cut <= 4:
                break
            raw = raw[:cut]


# --- national IDs ----------------------------------------------------------------------------
# Formats distinctive on their own (letters at fixed places, separators, long keyed numbers) are
# matched anywhere; bare 9-11 digit numbers whose checksum a random number passes ~1 time in 10
# (NL BSN, DE Steuer-IdNr, undashed SSN) are taken only after a keyword naming them.
_CONTEXT = r"[^\d\n]{0,25}?"


def _ssn_is_valid(value: str) -> bool:
    # stdnum reads the dashed form only; "212 67 1234" is the same number.
    return us_ssn.is_valid(value.replace(" ", "-"))


# (keywords one of which must be in the lowercased text or None, pattern, validator, group)
_NATIONAL_ID_PATTERNS: tuple[
    tuple[tuple[str, ...] | None, re.Pattern[str], Callable[[str], bool], int], ...
] = (
    (None, re.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])"), _ssn_is_valid, 0),
    (
        ("ssn", "social security"),
        re.compile(rf"(?i)\b(?:ssn|social security(?: number| no\.?)?){_CONTEXT}(\d{{9}})\b"),
        us_ssn.is_valid,
        1,
    ),
    (
        None,
        # FR NIR: sex, year, month, department (2A/2B for Corsica), commune, order, key.
        re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b"),
        fr_nir.is_valid,
        0,
    ),
    (None, re.compile(r"\b\d{8}-?[A-Z]\b"), es_dni.is_valid, 0),
    (None, re.compile(r"\b[XYZ]-?\d{7}-?[A-Z]\b"), es_nie.is_valid, 0),
    (
        None,
        # Codice fiscale, with omocodia (digits replaced by L-V) allowed in the numeric places.
        re.compile(
            r"\b[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b"
        ),
        it_cf.is_valid,
        0,
    ),
    (
        ("bsn", "burgerservicenummer", "sofinummer"),
        re.compile(
            rf"(?i)\b(?:bsn|burgerservicenummer|sofinummer){_CONTEXT}(\d{{4}}\.?\d{{2}}\.?\d{{3}})\b"
        ),
        nl_bsn.is_valid,
        1,
    ),
    (
        ("steuer", "idnr", "tax id", "tin"),
        re.compile(
            rf"(?i)\b(?:steuer-?id(?:entifikationsnummer)?|steuer-?idnr|idnr|"
            rf"tax id(?:entification number)?|tin){_CONTEXT}(\d{{2}} ?\d{{3}} ?\d{{3}} ?\d{{3}})\b"
        ),
        de_idnr.is_valid,
        1,
    ),
)


def _national_id_spans(text: str, lower: str) -> Iterator[Span]:
    for needles, pattern, is_valid, group in _NATIONAL_ID_PATTERNS:
        if needles is not None and not any(n in lower for n in needles):
            continue
        for m in pattern.finditer(text):
            if is_valid(m.group(group)):
                yield m.start(group), m.end(group), "NATIONAL_ID"


# --- IP addresses ----------------------------------------------------------------------------
# A dotted quad that ipaddress accepts IS treated as an IPv4 address, version-like or not: a
# wrongly scrubbed "1.2.3.4" costs little, a leaked address is the failure. The exception is an
# explicit version/section marker right before it ("v1.2.3.4", "version 1.2.3.4", "§ 1.2.3.4").
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_VERSION_BEFORE_RE = re.compile(
    r"(?i)(?:\bv|\bver\.?|\bversion|\brelease|\bbuild|\bsection|\bchapter|\bstep|§)\s{0,2}$"
)
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?:%[0-9A-Za-z]{1,15})?(?![\w:])"
)


def _ip_spans(text: str) -> Iterator[Span]:
    if "." in text:
        for m in _IPV4_RE.finditer(text):
            if _VERSION_BEFORE_RE.search(text, max(0, m.start() - 12), m.start()):
                continue
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            yield m.start(), m.end(), "IP"
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6_RE.finditer(text):
            raw = m.group()
            groups = [g for g in raw.split("%")[0].split(":") if g]
            # "1::2" (a slice), "::" and "::1" are not worth the false positives in code.
            if len(groups) < 2 or max(len(g) for g in groups) < 3:
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            yield m.start(), m.end(), "IP"


# --- phone numbers ---------------------------------------------------------------------------
# phonenumbers finds candidates itself and keeps only numbers valid for their region's metadata,
# but its candidate search is a large pure-Python pass over the whole text (over half of the
# scrubber's time). So a cheap regex first finds digit runs that could be a number (5+ digits with
# only phone separators between: the shortest valid number written with its country code has 5),
# and the matcher reads only windows around them; the padding keeps the context it checks (a
# letter glued to the number, a trailing "ext. 12"). max_tries bounds how many candidates it
# examines; scrubbing must not stop halfway through a long text, so the bound is lifted.
_PHONE_RUN_RE = re.compile(
    r"[+(\uff0b]?\d(?:[\d\s().\-/~\u2010-\u2015\u2212\u30fc\uff0d]{0,3}\d){4,}"
)
_PHONE_PAD = 32


def _phone_windows(text: str) -> Iterator[tuple[int, int]]:
    win_start = win_end = -1
    for m in _PHONE_RUN_RE.finditer(text):
        start, end = max(0, m.start() - _PHONE_PAD), min(len(text), m.end() + _PHONE_PAD)
        if start <= win_end:
            win_end = end
            continue
        if win_end >= 0:
            yield win_start, win_end
        win_start, win_end = start, end
    if win_end >= 0:
        yield win_start, win_end


def _phone_spans(text: str, region: str) -> Iterator[Span]:
    for offset, end in _phone_windows(text):
        matcher = phonenumbers.PhoneNumberMatcher(
            text[offset:end], region, leniency=phonenumbers.Leniency.VALID, max_tries=sys.maxsize
        )
        for match in matcher:
            yield offset + match.start, offset + match.end, "PHONE"


# --- custom patterns -------------------------------------------------------------------------
def compile_patterns(patterns: Mapping[str, str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Configuration ({"EMPLOYEE_ID": r"EMP-\\d{6}"}) -> `extra_patterns` for `scrub`.

    Raises ValueError on a bad name or regex, so a broken configuration fails when loaded.
    """
    compiled = []
    for name, regex in patterns.items():
        label = name.upper()
        if not _NAME_RE.fullmatch(label):
            raise ValueError(f"PII pattern name {name!r}: use letters, digits and _ (max 32)")
        try:
            compiled.append((label, re.compile(regex)))
        except re.error as exc:
            raise ValueError(f"PII pattern {name!r}: {exc}") from exc
    return tuple(compiled)


def _custom_spans(text: str, patterns: Iterable[tuple[str, re.Pattern[str]]]) -> Iterator[Span]:
    for name, pattern in patterns:
        label = name.upper()
        for m in pattern.finditer(text):
            if m.end() > m.start():
                yield m.start(), m.end(), label


# --- scrub -----------------------------------------------------------------------------------
def _default_region() -> str:
    try:
        from django.conf import settings

        return getattr(settings, "GATEWAY_PII_PHONE_REGION", DEFAULT_PHONE_REGION)
    except Exception:  # settings not configured (a script, the bench): the built-in default
        return DEFAULT_PHONE_REGION


def find(
    text: str,
    *,
    extra_patterns: Iterable[tuple[str, re.Pattern[str]]] = (),
    phone_region: str | None = None,
) -> list[Span]:
    """The findings in `text` as sorted, non-overlapping (start, end, label) spans.

    Detectors in priority order: custom patterns (the operator said so), secrets, emails, IBANs,
    cards, national IDs, IPs, phones. A lower-priority span overlapping a kept one is dropped.
    Raises ScrubError if any detector fails.
    """
    if not text:
        return []
    region = phone_region or _default_region()
    extra = tuple(extra_patterns)
    lower = text.lower()  # for the detectors' substring prefilters
    detectors: list[tuple[str, Callable[[], Iterable[Span]]]] = [
        ("custom", lambda: _custom_spans(text, extra)),
        ("secret", lambda: _secret_spans(text, lower)),
        ("email", lambda: _email_spans(text)),
        ("iban", lambda: _iban_spans(text)),
        ("card", lambda: _card_spans(text)),
        ("national_id", lambda: _national_id_spans(text, lower)),
        ("ip", lambda: _ip_spans(text)),
        ("phone", lambda: _phone_spans(text, region)),
    ]
    kept: list[Span] = []
    # Kept spans never overlap; findings per text are few (tens), so a linear overlap check is
    # cheaper than maintaining an interval index.
    for name, detect in detectors:
        try:
            found = list(detect())
        except Exception as exc:
            raise ScrubError(f"PII detector {name!r} failed: {exc.__class__.__name__}") from exc
        for start, end, label in found:
            if not any(start < k_end and k_start < end for k_start, k_end, _ in kept):
                kept.append((start, end, label))
    kept.sort()
    return kept


def scrub(
    text: str,
    *,
    extra_patterns: Iterable[tuple[str, re.Pattern[str]]] = (),
    phone_region: str | None = None,
) -> Scrubbed:
    """Return `text` with every finding replaced by its `[LABEL]` placeholder, and the counts.

    `phone_region` (ISO 3166 alpha-2) is where numbers written without +country code are read;
    it defaults to settings.GATEWAY_PII_PHONE_REGION. Raises ScrubError if any detector fails.
    """
    spans = find(text, extra_patterns=extra_patterns, phone_region=phone_region)
    if not spans:
        return Scrubbed(text, {})
    parts: list[str] = []
    counts: dict[str, int] = {}
    pos = 0
    for start, end, label in spans:
        parts.append(text[pos:start])
        parts.append(f"[{label}]")
        counts[label] = counts.get(label, 0) + 1
        pos = end
    parts.append(text[pos:])
    return Scrubbed("".join(parts), counts)
