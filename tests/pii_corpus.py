# ruff: noqa: E501  (corpus lines are data: a case reads best on one line)
"""A labelled corpus for the PII scrubber: positives of every type and tricky negatives.

Each case is a text, the PII it holds as (label, exact substring) pairs, and optionally the
phone region the text is read in (default US). A negative case holds no PII: anything the
scrubber finds there is a false positive. Test values are checksum-valid but not real people:
test card numbers, example IBANs, generated national IDs, documentation IP ranges, fake keys.

Decisions the corpus encodes:
- A bare dotted quad ("1.2.3.4") IS an IP address; only an explicit version/section marker right
  before it ("v1.2.3.4", "version 1.2.3.4") makes it a version. Redacting a version number costs
  little; leaking an address is the failure.
- "::1" and slice-like "1::2" are not scrubbed (loopback is not personal; slices are common).
- Bare 9-11 digit national IDs (NL BSN, DE Steuer-IdNr, undashed SSN) count only after a keyword
  naming them; a random number passes their checksums about 1 time in 10.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    text: str
    pii: tuple[tuple[str, str], ...] = ()
    region: str = "US"


def C(text: str, *pii: tuple[str, str], region: str = "US") -> Case:
    return Case(text, tuple(pii), region)


E, P, CARD, IBAN, NID, IP, S = "EMAIL", "PHONE", "CARD", "IBAN", "NATIONAL_ID", "IP", "SECRET"

_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi"
    "aWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98gF1zQ3x9pQ2\nq0FakeFakeFakeKeyMaterial==\n"
    "-----END RSA PRIVATE KEY-----"
)
_PEM_EC = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBfakefakefake0123456789abcdef\n-----END EC PRIVATE KEY-----"

POSITIVES: list[Case] = [
    # --- emails
    C("Please reply to john.doe@example.com before Friday.", (E, "john.doe@example.com")),
    C(
        "Contact: Marie-Claire.O'Neil? no, marie.oneil+billing@mail.example.co.uk",
        (E, "marie.oneil+billing@mail.example.co.uk"),
    ),
    C(
        "cc: a_b-c@sub.domain-x.io; bcc: Z9@example.org",
        (E, "a_b-c@sub.domain-x.io"),
        (E, "Z9@example.org"),
    ),
    C("My email is JANE_SMITH@EXAMPLE.COM, thanks.", (E, "JANE_SMITH@EXAMPLE.COM")),
    C("<li>support@acme-corp.com</li>", (E, "support@acme-corp.com")),
    C('{"user": "dev.ops%team@example.net"}', (E, "dev.ops%team@example.net")),
    C("Send the invoice to (accounts@example.fr).", (E, "accounts@example.fr")),
    C("From: Ana López <ana.lopez@correo.example.es>", (E, "ana.lopez@correo.example.es")),
    # --- phones (international and national formats)
    C("Call me at +1 415-555-2671 tomorrow.", (P, "+1 415-555-2671")),
    C("Office: (415) 555-2671, ext. 12", (P, "(415) 555-2671, ext. 12")),
    C(
        "my cell is 212.555.0147? no wait it's 646-555-3890",
        (P, "212.555.0147"),
        (P, "646-555-3890"),
    ),
    C("US number 1-800-275-2273 for Apple support", (P, "1-800-275-2273")),
    C("Ring +44 20 7946 0958 for the London office.", (P, "+44 20 7946 0958")),
    C("Our UK line is 020 7946 0958.", (P, "020 7946 0958"), region="GB"),
    C("Mobile: 07911 123456", (P, "07911 123456"), region="GB"),
    C("Appelez le +33 1 42 68 53 00 svp", (P, "+33 1 42 68 53 00")),
    C("Mon portable : 06 12 34 56 78", (P, "06 12 34 56 78"), region="FR"),
    C("Telefon: +49 30 901820", (P, "+49 30 901820")),
    C("Ruf mich an unter 030 901820", (P, "030 901820"), region="DE"),
    C("Llámame al +34 912 345 678", (P, "+34 912 345 678")),
    C("Chiamami al +39 06 6982 3000", (P, "+39 06 6982 3000")),
    C("Bel +31 20 624 1111 voor info", (P, "+31 20 624 1111")),
    C("WhatsApp +4915123456789 any time", (P, "+4915123456789")),
    C("phone=+14155552671&name=x", (P, "+14155552671")),
    C("Reach our Sydney desk at +61 2 9374 4000.", (P, "+61 2 9374 4000")),
    C("Tel. +81 3-3224-9999 (Tokyo)", (P, "+81 3-3224-9999")),
    # --- cards (Luhn-valid test numbers)
    C("Charge card 4111 1111 1111 1111 exp 12/27", (CARD, "4111 1111 1111 1111")),
    C("card: 4242-4242-4242-4242", (CARD, "4242-4242-4242-4242")),
    C("MC 5555555555554444 was declined", (CARD, "5555555555554444")),
    C("use 5105 1051 0510 5100 instead", (CARD, "5105 1051 0510 5100")),
    C("Amex 3782 822463 10005 on file", (CARD, "3782 822463 10005")),
    C("amex=371449635398431;", (CARD, "371449635398431")),
    C("Discover: 6011 1111 1111 1117.", (CARD, "6011 1111 1111 1117")),
    C("JCB 3530111333300000 ok", (CARD, "3530111333300000")),
    C("Diners 3056 9309 0259 04", (CARD, "3056 9309 0259 04")),
    C("new Mastercard 2223 0031 2200 3222", (CARD, "2223 0031 2200 3222")),
    C("UnionPay card 6200000000000005", (CARD, "6200000000000005")),
    C("Visa 4012888888881881, CVV 123", (CARD, "4012888888881881")),
    # --- IBANs
    C("Wire to DE89 3704 0044 0532 0130 00 please", (IBAN, "DE89 3704 0044 0532 0130 00")),
    C("IBAN: GB29 NWBK 6016 1331 9268 19", (IBAN, "GB29 NWBK 6016 1331 9268 19")),
    C("RIB FR14 2004 1010 0505 0001 3M02 606.", (IBAN, "FR14 2004 1010 0505 0001 3M02 606")),
    C("ES9121000418450200051332 (Caixa)", (IBAN, "ES9121000418450200051332")),
    C("conto IT60 X054 2811 1010 0000 0123 456", (IBAN, "IT60 X054 2811 1010 0000 0123 456")),
    C("rekening NL91ABNA0417164300", (IBAN, "NL91ABNA0417164300")),
    C("BE71 0961 2345 6769 AND the reference", (IBAN, "BE71 0961 2345 6769")),
    C("CH93 0076 2011 6238 5295 7 is the Swiss one", (IBAN, "CH93 0076 2011 6238 5295 7")),
    C("AT611904300234573201", (IBAN, "AT611904300234573201")),
    C(
        "PL61 1090 1014 0000 0712 1981 2874 (Polish account)",
        (IBAN, "PL61 1090 1014 0000 0712 1981 2874"),
    ),
    # --- national IDs
    C("SSN 536-90-4399 on the form", (NID, "536-90-4399")),
    C("social security number: 401-22-7788", (NID, "401-22-7788")),
    C("Her SSN is 212 67 1234.", (NID, "212 67 1234")),
    C("ssn=536904399", (NID, "536904399")),
    C("Numéro de sécu : 1 85 05 78 006 084 91", (NID, "1 85 05 78 006 084 91")),
    C("NIR 293037512000543", (NID, "293037512000543")),
    C("DNI 12345678Z", (NID, "12345678Z")),
    C("mi DNI es 87654321-X", (NID, "87654321-X")),
    C("NIE X1234567L para el contrato", (NID, "X1234567L")),
    C("NIE: Y-7654321-G", (NID, "Y-7654321-G")),
    C("codice fiscale RSSMRA85T10A562S", (NID, "RSSMRA85T10A562S")),
    C("CF: BNCGNN90A41F205C, nata a Milano", (NID, "BNCGNN90A41F205C")),
    C("BSN: 799642630", (NID, "799642630")),
    C("burgerservicenummer 5782.30.859", (NID, "5782.30.859")),
    C("Steuer-IdNr. 12576358404", (NID, "12576358404")),
    C("Steueridentifikationsnummer: 58 613 872 844", (NID, "58 613 872 844")),
    C("tax id 46726390689 (DE)", (NID, "46726390689")),
    # --- IPs
    C("The server at 192.168.1.10 refused", (IP, "192.168.1.10")),
    C("client_ip=203.0.113.42 path=/v1/chat", (IP, "203.0.113.42")),
    C("Resolve via 8.8.8.8 or 1.1.1.1.", (IP, "8.8.8.8"), (IP, "1.1.1.1")),
    C("connect 10.0.0.5:5432 failed", (IP, "10.0.0.5")),
    C("X-Forwarded-For: 198.51.100.7, 172.16.254.1", (IP, "198.51.100.7"), (IP, "172.16.254.1")),
    C("v6 host 2001:db8::ff00:42:8329 is up", (IP, "2001:db8::ff00:42:8329")),
    C(
        "addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 leased",
        (IP, "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ),
    C("link-local fe80::1ff:fe23:4567:890a%eth0", (IP, "fe80::1ff:fe23:4567:890a%eth0")),
    C("ping 1.2.3.4 now", (IP, "1.2.3.4")),
    # --- secrets
    C(
        "OPENAI_API_KEY=sk-proj-4fGh7Jk9Lm2Np5Qr8St1Uv3Wx6Yz0Ab",
        (S, "sk-proj-4fGh7Jk9Lm2Np5Qr8St1Uv3Wx6Yz0Ab"),
    ),
    C(
        "my key is sk-ant-api03-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz-_AA please keep it",
        (S, "sk-ant-api03-AbCdEf0123456789GhIjKlMnOpQrStUvWxYz-_AA"),
    ),
    C("legacy key sk-3kd9Fj2lQp8Zx7Vb6Nm5Lk4Jh3Gf2Ds1", (S, "sk-3kd9Fj2lQp8Zx7Vb6Nm5Lk4Jh3Gf2Ds1")),
    C("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", (S, "AKIAIOSFODNN7EXAMPLE")),
    C(
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        (S, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ),
    C(
        "token ghp_1234567890abcdefghijABCDEFGHIJ123456 leaked",
        (S, "ghp_1234567890abcdefghijABCDEFGHIJ123456"),
    ),
    C(
        "SLACK_TOKEN: xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
        (S, "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp"),
    ),
    C(f"jwt={_JWT}", (S, _JWT)),
    C(
        "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0.",
        (S, "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ),
    C(f"here is my key:\n{_PEM}\nthanks", (S, _PEM)),
    C(f"{_PEM_EC}", (S, _PEM_EC)),
    C(
        "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY in the page",
        (S, "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ),
    C("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", (S, "sk_live_4eC39HqLyjWDarjtT1zdp7dc")),
    C('{"api_key": "a1b2c3d4e5f6g7h8"}', (S, "a1b2c3d4e5f6g7h8")),
    C("DB password=Tr0ub4dor&3x!", (S, "Tr0ub4dor&3x!")),
    C("curl -H 'Authorization: Bearer " + _JWT + "' https://api.example.com", (S, _JWT)),
    # --- mixed
    C(
        "Hi, I'm Tom (tom@example.com, +1 415-555-2671). Card 4111111111111111, "
        "IBAN DE89370400440532013000, from 203.0.113.9.",
        (E, "tom@example.com"),
        (P, "+1 415-555-2671"),
        (CARD, "4111111111111111"),
        (IBAN, "DE89370400440532013000"),
        (IP, "203.0.113.9"),
    ),
    C(
        "Ticket 4471: user jane@example.org (SSN 536-90-4399) pasted sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1",
        (E, "jane@example.org"),
        (NID, "536-90-4399"),
        (S, "sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1"),
    ),
]

NEGATIVES: list[Case] = [
    C("Your order #A-1029384756 has shipped."),
    C("Order number 2024-118-55231 is confirmed."),
    C("ISBN 978-3-16-148410-0 is on the back cover."),
    C("ISBN-13: 9780306406157"),
    C("Upgrade to v1.2.3.4 before Monday."),
    C("Tested with version 10.0.19041.1 of Windows."),
    C("Chrome 120.0.6099.109 crashed."),
    C("See section 3.1.4.1 of the RFC."),
    C("Released 1.2.3 on 2024-01-15."),
    C("Meeting on 15/01/2024 at 14:30."),
    C("The date 2024-03-05T12:30:45Z is a timestamp."),
    C("Unix time 1700000000 in seconds, 1700000000123 in ms."),
    C("It costs $1,234.56 or €49.99 a month."),
    C("Total: 12 345 678,90 EUR"),
    C("The number 4111 1111 1111 1112 fails Luhn."),
    C("Reference 1234567812345678 is not a card."),
    C("batch 9999 8888 7777 6666"),
    C("commit a3f9c2e1b4d5f6a7b8c9d0e1f2a3b4c5d6e7f8a9 fixed it"),
    C("request id 550e8400-e29b-41d4-a716-446655440000 failed"),
    C("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
    C("sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    C("pip install scikit-learn (sk-learn for short)"),
    C("We ask-for-permission on a risk-based approach."),
    C("sk-8 skateboard shop opens at 9"),
    C("the sk- prefix marks OpenAI keys"),
    C("Use task-manager-api-key-rotation-policy for details"),
    C("for (int i = 0; i < 10; i++) { sum += a[i]; }"),
    C("std::vector<int> v; v.push_back(1);"),
    C("evens = xs[::2]; odds = xs[1::2]"),
    C("localhost is ::1 and 127.0.0.1 is... well, loopback", (IP, "127.0.0.1")),
    C("MAC address 00:1A:2B:3C:4D:5E on eth0"),
    C("Coordinates 48.8566, 2.3522 (Paris)"),
    C("The meeting ran 12:30:45 to 13:15:00."),
    C("@pytest.fixture\ndef client():\n    return Client()"),
    C("Mention @alice and @bob in the thread."),
    C("Tracking 1Z999AA10123456784 via UPS"),
    C("Room 101, building 7, zip 94103."),
    C("Invoice 123456789 is overdue."),
    C("The population was 67390000 in 2023."),
    C("Pi is 3.14159265358979."),
    C("HTTP 404 and 503 errors spiked at 02:00."),
    C("Employee id E-00042, badge 7731."),
    C("password: see the vault"),
    C("Bearer authentication is used by the API."),
    C("The token limit is 128000 tokens."),
    C("A bearer bond, not a token."),
    C("Port 8080 and 443 are open."),
    C("Product SKU 8806094747289 in stock."),
    C("Call extension 4412 for help."),
    C("The answer is 42, the year is 1984."),
    C("git checkout feature/ABC-1234-add-login"),
    C("AKIA is the prefix of AWS access key ids."),
    C("ghp_ prefixed tokens come from GitHub."),
    C("eyJ is how base64 JSON starts."),
    C("Temperature 21.5°C, humidity 45%."),
    C("Scores: 98.6, 87.2, 76.4, 65.0"),
    C("Model gpt-4o-2024-08-06 and claude-3-5-sonnet-20241022"),
    C("base64: SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0Lg=="),
    C("matrix 1 0 0 0 1 0 0 0 1 0 0 0 1 0 0 0"),
    C("The IBAN format starts with a country code like DE."),
    C("DE12 is not an IBAN, nor is GB00 1234."),
    C("Account DE00 3704 0044 0532 0130 00 has a bad checksum."),
    C("SSN format is XXX-XX-XXXX, e.g. 000-12-3456 is invalid."),
    C("Famous sample SSN 078-05-1120 was invalidated."),
    C("The code ABCDEF12G34H567I is not a codice fiscale."),
    C("Reference 12345678A."),
    C("Part number X1234567A"),
    C("Phone numbers look like 555-0100 in films."),
    C("Call 123-456-7890 (placeholder)."),
    C("lat/long: 40.7128,-74.0060"),
    C("Dimensions 1920x1080 at 60Hz, 2560.1440.144"),
    C("Copyright 2009-2024 Example Inc."),
    C("between 1.000.000 and 2.000.000 users"),
    C("sizes: 256.0.0.0 is not valid, nor 999.1.1.1"),
    C("hex colour #1a2b3c and #FFFFFF"),
    C("regex ^[a-z]+@[a-z]+$ matches nothing real"),
    C("docker image nginx:1.25.3-alpine@sha256:abcdef0123456789abcdef"),
    C("Error code 0x80070005 access denied"),
    C("Run `kubectl get pods -n kube-system`"),
    C("ISO 8601 duration P3Y6M4DT12H30M5S"),
    C("BSN stands for burgerservicenummer."),
    C("A tax id must be 11 digits."),
    C("1234 5678 9012 3456 is a sample layout"),
    C("Latency p99 was 1234.5678 ms"),
    C("ask-anthropic-for-skills is a repo name"),
    C("The Bearer token goes in the header, never in the URL."),
    C("secret_santa = True"),
    C("api_key = os.environ['OPENAI_API_KEY']"),
    C("YYYY-MM-DD HH:MM:SS"),
    C("scores 1.0.0.0.0 and a.b.c.d"),
    C("Listing 10-3 on page 216-217."),
]

CASES: list[Case] = POSITIVES + NEGATIVES
LABELS = (E, P, CARD, IBAN, NID, IP, S)
