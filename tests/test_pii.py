"""The PII scrubber (infra/pii.py): detectors, placeholders, counts, failure, and corpus quality."""

import re
from collections import Counter

import phonenumbers
import pytest

from infra import pii
from infra.pii import ScrubError, compile_patterns, find, scrub
from tests.pii_corpus import CASES, LABELS, NEGATIVES, POSITIVES

# Per-type floors over tests/pii_corpus.py. The corpus is small (10-25 positives per type), so
# one miss moves recall by 4-10 points: 0.95 allows no more than one miss in the larger types and
# fails on any regression that loses a whole format. Precision counts every span found in a
# negative case or not labelled in a positive one.
MIN_RECALL = 0.95
MIN_PRECISION = 0.95


def test_corpus_is_big_and_covers_every_type():
    assert len(CASES) >= 150
    labels = Counter(label for case in POSITIVES for label, _ in case.pii)
    assert all(labels[label] >= 8 for label in LABELS), labels
    assert len(NEGATIVES) >= 80


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("mail john.doe@example.com now", "[EMAIL]"),
        ("call +44 20 7946 0958 now", "[PHONE]"),
        ("card 4111-1111-1111-1111 now", "[CARD]"),
        ("iban GB29 NWBK 6016 1331 9268 19 now", "[IBAN]"),
        ("ssn 536-90-4399 now", "[NATIONAL_ID]"),
        ("dni 12345678Z now", "[NATIONAL_ID]"),
        ("cf RSSMRA85T10A562S now", "[NATIONAL_ID]"),
        ("host 203.0.113.42 now", "[IP]"),
        ("host 2001:db8::ff00:42:8329 now", "[IP]"),
        ("key AKIAIOSFODNN7EXAMPLE now", "[SECRET]"),
        ("key ghp_1234567890abcdefghijABCDEFGHIJ123456 now", "[SECRET]"),
    ],
)
def test_each_detector_replaces_with_its_placeholder(text, placeholder):
    result = scrub(text)
    word = text.split()[0]
    assert result.text == f"{word} {placeholder} now"
    assert result.counts == {placeholder.strip("[]"): 1}


def test_counts_and_mixed_text():
    text = "a@example.com, b@example.org, 4242 4242 4242 4242 and 10.1.2.3"
    result = scrub(text)
    assert result.text == "[EMAIL], [EMAIL], [CARD] and [IP]"
    assert result.counts == {"EMAIL": 2, "CARD": 1, "IP": 1}
    assert result.total == 4


def test_clean_text_is_returned_unchanged():
    text = "Summarise the meeting on 2024-01-15 about release v1.2.3.4."
    result = scrub(text)
    assert result.text == text and result.counts == {}
    assert scrub("").text == ""


def test_luhn_and_checksums_reject_lookalikes():
    assert scrub("4111 1111 1111 1112").counts == {}
    assert scrub("DE00 3704 0044 0532 0130 00").counts == {}
    assert scrub("078-05-1120").counts == {}  # the invalidated sample SSN


def test_bearer_keeps_the_scheme_and_the_period():
    assert scrub("Authorization: Bearer abcdef1234567890XYZ.").text == (
        "Authorization: Bearer [SECRET]."
    )


def test_private_key_block_is_one_secret():
    text = "-----BEGIN PRIVATE KEY-----\nMIIEv\nQIBADAN\n-----END PRIVATE KEY-----\nafter"
    assert scrub(text).text == "[SECRET]\nafter"


def test_phone_region_decides_national_numbers(settings):
    assert scrub("ring 020 7946 0958", phone_region="GB").text == "ring [PHONE]"
    assert scrub("ring 020 7946 0958", phone_region="US").text == "ring 020 7946 0958"
    settings.GATEWAY_PII_PHONE_REGION = "GB"
    assert scrub("ring 020 7946 0958").text == "ring [PHONE]"


def test_custom_patterns_get_their_own_placeholder_and_win_overlaps():
    extra = compile_patterns({"employee_id": r"EMP-\d{6}", "PROJECT": r"Project [A-Z][a-z]+"})
    result = scrub("EMP-004217 on Project Falcon, mail x@example.com", extra_patterns=extra)
    assert result.text == "[EMPLOYEE_ID] on [PROJECT], mail [EMAIL]"
    assert result.counts == {"EMPLOYEE_ID": 1, "PROJECT": 1, "EMAIL": 1}
    # Raw compiled pairs work too, and an empty match is ignored.
    assert scrub("abc", extra_patterns=[("X", re.compile(r"z*"))]).text == "abc"


def test_compile_patterns_rejects_bad_configuration():
    with pytest.raises(ValueError, match="name"):
        compile_patterns({"bad name": r"x"})
    with pytest.raises(ValueError, match="broken"):
        compile_patterns({"broken": r"(unclosed"})


def test_a_failing_detector_raises_scrub_error(monkeypatch):
    def boom(text, region):
        raise RuntimeError("metadata missing")

    monkeypatch.setattr(pii, "_phone_spans", boom)
    with pytest.raises(ScrubError, match="phone"):
        scrub("call me maybe")


def test_a_failing_custom_pattern_raises_scrub_error():
    class Broken:
        def finditer(self, text):
            raise TypeError("not a pattern")

    with pytest.raises(ScrubError, match="custom"):
        scrub("text", extra_patterns=[("X", Broken())])


def _score():
    tp, fp, fn = Counter(), Counter(), Counter()
    misses = []
    for case in CASES:
        spans = find(case.text, phone_region=case.region)
        got = Counter((label, case.text[s:e]) for s, e, label in spans)
        want = Counter(case.pii)
        for key in got | want:
            label = key[0]
            tp[label] += min(got[key], want[key])
            fp[label] += max(0, got[key] - want[key])
            fn[label] += max(0, want[key] - got[key])
            if got[key] != want[key]:
                misses.append((case.text, key, got[key], want[key]))
    return tp, fp, fn, misses


def test_precision_and_recall_per_type_on_the_corpus():
    tp, fp, fn, misses = _score()
    for label in LABELS:
        recall = tp[label] / ((tp[label] + fn[label]) or 1)
        precision = tp[label] / ((tp[label] + fp[label]) or 1)
        assert recall >= MIN_RECALL, (label, recall, misses)
        assert precision >= MIN_PRECISION, (label, precision, misses)


def test_no_email_card_or_phone_from_the_corpus_survives_scrubbing():
    for case in POSITIVES:
        out = scrub(case.text, phone_region=case.region).text
        for label, value in case.pii:
            if label in ("EMAIL", "CARD", "PHONE"):
                assert value not in out, (value, out)


def test_phone_prefilter_windows_find_what_the_full_matcher_finds():
    # The digit-run windows are a speed-up only: on every corpus text and on a long mixed text
    # they must give exactly the spans of phonenumbers run over the whole text.
    texts = [case.text for case in CASES]
    texts.append(" ".join(texts) + " tel +683 4002, 1 0 0 0 1 ext. 1234 (415) 555-2671 x 99")
    for text in texts:
        for region in ("US", "GB", "FR", "DE"):
            full = {
                (m.start, m.end)
                for m in phonenumbers.PhoneNumberMatcher(
                    text, region, leniency=phonenumbers.Leniency.VALID, max_tries=10**9
                )
            }
            assert {(s, e) for s, e, _ in pii._phone_spans(text, region)} == full, text
