"""Reading /metrics as Prometheus would: prometheus_client's own parser, then sums by label."""

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

# The sample names a family of each type exposes (the parser strips a counter's _total).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


@dataclass
class Scrape:
    families: dict  # name -> type
    samples: list  # (sample name, labels dict, value)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(
            value
            for sample, found, value in self.samples
            if sample == name and all(found.get(k) == v for k, v in labels.items())
        )

    def names(self) -> set[str]:
        """Every sample name the exposition may hold: those present, and each declared family's
        own (a labelled family with no series yet is declared but has no sample)."""
        names = {sample for sample, _, _ in self.samples}
        for family, kind in self.families.items():
            names.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
        return names


def parse(text: str) -> Scrape:
    families, samples = {}, []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        samples.extend((s.name, s.labels, s.value) for s in family.samples)
    return Scrape(families, samples)


def scrape(base_url: str, **headers: str) -> Scrape:
    response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
