"""The PII scrubber measured: throughput in MB/s and precision/recall per type on the corpus.

Run: .venv/bin/python bench/pii_bench.py [--mb 4] [--doc-kb 8]. A measurement, not a test.

Throughput is measured on a realistic mixed text (chat prose, code, logs, JSON, and the corpus'
positives and negatives, so about one finding per 300 bytes) of --mb megabytes, scrubbed as
documents of --doc-kb kilobytes (the size of a prompt or a response: the way the gateway calls
it) and also as one large text. Precision and recall are over tests/pii_corpus.py, counting exact
(type, substring) matches, as tests/test_pii.py does.
"""

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.pii import find, scrub
from tests.pii_corpus import CASES, LABELS

FILLER = [
    "Can you summarise the following meeting notes in three bullet points for the team? ",
    "The quarterly report shows revenue up 12% to $4.2M, with churn down to 3.1% since Q2. ",
    "def handler(event, context):\n    items = [x for x in event['items'] if x['qty'] > 0]\n"
    "    return {'statusCode': 200, 'body': json.dumps(items)}\n",
    '{"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 512, "stream": true}\n',
    "2024-05-14T09:31:22.481Z INFO request_id=7f3c2a1b latency_ms=183 status=200 route=/v1/chat\n",
    "Sure! Here is a revised version of your paragraph, shorter and in a friendlier tone. ",
    "Our SLA guarantees 99.9% availability, measured monthly, excluding scheduled maintenance. ",
    "SELECT team_id, sum(cost) FROM usage WHERE day >= '2024-01-01' GROUP BY team_id;\n",
    "Translate into French: the shipment left the warehouse on Tuesday and arrives Friday. ",
]


def mixed_text(size: int, seed: int = 7, pii_share: float = 0.25) -> str:
    rng = random.Random(seed)
    samples = [c.text + " " for c in CASES]
    parts, n = [], 0
    while n < size:
        piece = rng.choice(samples) if rng.random() < pii_share else rng.choice(FILLER)
        parts.append(piece)
        n += len(piece)
    return "".join(parts)[:size]


def throughput(text: str, doc_size: int) -> tuple[float, int]:
    docs = [text[i : i + doc_size] for i in range(0, len(text), doc_size)]
    start = time.perf_counter()
    findings = sum(scrub(d).total for d in docs)
    elapsed = time.perf_counter() - start
    return len(text.encode()) / 1e6 / elapsed, findings


def corpus_scores() -> dict[str, tuple[int, int, int]]:
    tp, fp, fn = Counter(), Counter(), Counter()
    for case in CASES:
        got = Counter(
            (lab, case.text[s:e]) for s, e, lab in find(case.text, phone_region=case.region)
        )
        want = Counter(case.pii)
        for key in got | want:
            tp[key[0]] += min(got[key], want[key])
            fp[key[0]] += max(0, got[key] - want[key])
            fn[key[0]] += max(0, want[key] - got[key])
    return {label: (tp[label], fp[label], fn[label]) for label in LABELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=4.0)
    parser.add_argument("--doc-kb", type=float, default=8.0)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    dense, clean = mixed_text(size), mixed_text(size, pii_share=0.0)
    scrub(dense[:10_000])  # warm the regex and phonenumbers metadata caches

    print(f"Throughput on {args.mb:g} MB of mixed text (one process, one core)")
    print(f"| {'text':<44} | {'MB/s':>6} | {'findings':>8} |")
    print(f"|{'-' * 46}|{'-' * 8}|{'-' * 10}|")
    for name, text in (
        ("PII-dense (25% corpus lines)", dense),
        ("no PII (prose, code, logs)", clean),
    ):
        for label, size in (
            (f"{args.doc_kb:g} KB documents", int(args.doc_kb * 1000)),
            ("one text", len(text)),
        ):
            mbps, findings = throughput(text, size)
            print(f"| {name + ', ' + label:<44} | {mbps:>6.2f} | {findings:>8} |")

    print(f"\nPrecision/recall on tests/pii_corpus.py ({len(CASES)} cases)")
    print(
        f"| {'type':<12} | {'TP':>4} | {'FP':>3} | {'FN':>3} | {'precision':>9} | {'recall':>6} |"
    )
    print(f"|{'-' * 14}|{'-' * 6}|{'-' * 5}|{'-' * 5}|{'-' * 11}|{'-' * 8}|")
    totals = [0, 0, 0]
    for label, (tp, fp, fn) in corpus_scores().items():
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        print(
            f"| {label:<12} | {tp:>4} | {fp:>3} | {fn:>3} | "
            f"{tp / ((tp + fp) or 1):>9.3f} | {tp / ((tp + fn) or 1):>6.3f} |"
        )
    tp, fp, fn = totals
    print(
        f"| {'all':<12} | {tp:>4} | {fp:>3} | {fn:>3} | "
        f"{tp / (tp + fp):>9.3f} | {tp / (tp + fn):>6.3f} |"
    )


if __name__ == "__main__":
    main()
