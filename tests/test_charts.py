"""The SVG charts (billing/charts.py): marks match the data, text is escaped, the markup is
well-formed XML with its accessible name."""

import xml.etree.ElementTree as ET

import pytest

from billing import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    # Our own markup, not untrusted input; parsing fails on anything not well-formed.
    return ET.fromstring(str(markup))  # noqa: S314


def usd(v: float) -> str:
    return f"${v:.2f}"


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [(0, 1.0, 0.25), (3.7, 4.0, 1.0), (0.0123, 0.015, 0.005), (950, 1000, 250), (10, 10, 2.5)],
)
def test_axis_tops_are_round_and_cover_the_data(value, top, step):
    assert charts.nice_ceiling(value) == pytest.approx((top, step))


def test_stacked_bars_draw_one_segment_per_non_zero_value():
    svg = parse(
        charts.stacked_bars(
            chart_id="c",
            title="Cost",
            labels=["a", "b", "c"],
            series=[charts.Series("m1", [1, 0, 2]), charts.Series("m2", [0.5, None, 0])],
            fmt=usd,
            y_title="USD",
        )
    )
    assert svg.get("role") == "img" and svg.get("aria-labelledby") == "c-title c-desc"
    assert svg.find(f"{SVG}title").text == "Cost"
    bars = svg.findall(f".//{SVG}rect[@class='bar']")
    assert [(b.get("data-series"), b.get("data-label"), b.get("data-value")) for b in bars] == [
        ("m1", "a", "1"), ("m2", "a", "0.5"), ("m1", "c", "2")
    ]  # fmt: skip
    # Segments stack: m2's bar on "a" sits right on top of m1's.
    m1, m2 = bars[0], bars[1]
    assert float(m2.get("y")) + float(m2.get("height")) == pytest.approx(
        float(m1.get("y")), abs=0.2
    )
    legend = [g.get("data-series") for g in svg.findall(f".//{SVG}g[@class='legend-item']")]
    assert legend == ["m1", "m2"]


def test_a_missing_value_breaks_the_line():
    svg = parse(
        charts.lines(
            chart_id="l",
            title="Latency",
            labels=["1", "2", "3", "4"],
            series=[charts.Series("p50", [10, None, 30, 40])],
            fmt=str,
            y_title="ms",
        )
    )
    path = svg.find(f".//{SVG}g[@class='series']/{SVG}path").get("d")
    assert path.count("M") == 2 and path.count("L") == 1
    assert len(svg.findall(f".//{SVG}circle")) == 3


def test_names_are_escaped_everywhere():
    evil = '"><script>alert(1)</script>&'
    markup = str(
        charts.lines(
            chart_id="x",
            title=evil,
            labels=[evil],
            series=[charts.Series(evil, [1.0])],
            fmt=str,
            y_title=evil,
        )
    )
    assert "<script>" not in markup
    svg = parse(markup)
    assert svg.find(f"{SVG}title").text == evil  # escaped in the markup, intact as text
    assert svg.find(f".//{SVG}g[@class='series']").get("data-series") == evil
