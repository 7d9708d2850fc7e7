"""The analytics pages' content, built once from the selectors: each section's chart, the table
of the same numbers beside it, and the CSV rows of the same numbers again. One builder for all
three is what keeps the chart, the table and the export from disagreeing."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.utils.safestring import SafeString

from tenants.models import Team

from . import analytics, charts
from .analytics import Period

CSV_COLUMNS = ["section", "team", "day", "series", "metric", "value"]
# Every team's cost is one chart on the admin's page; past this many, only the CSV has the rest.
MAX_TEAM_CHARTS = 20


def usd(value: Decimal | float) -> str:
    # Cents hide most of a small team's day; four decimals show it without noise.
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:,.4f}"


def usd_tick(value: float) -> str:
    return f"${value:,.2f}".replace(".00", "")


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def exact(value: Decimal) -> str:
    """A Decimal in full, without exponent or trailing zeros (for the CSV)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _day(day: date) -> str:
    return day.strftime("%m-%d")


@dataclass
class Table:
    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    key: str
    title: str
    about: str  # what the chart shows, in a sentence
    table: Table
    chart: SafeString | None = None
    empty: bool = False


@dataclass
class Report:
    period: Period
    team: Team | None
    sections: list[Section] = field(default_factory=list)
    csv_rows: list[list[str]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No usage at all in the period (the burn-down may still show a month's budget)."""
        return any(s.key == "cost" and s.empty for s in self.sections)


def _cost_sections(report: Report) -> None:
    teams = analytics.daily_cost(period=report.period, team=report.team)
    if not teams:
        report.sections.append(
            Section(
                "cost",
                "Daily cost by model",
                "Cost per day, stacked by requested model.",
                Table("Daily cost by model", [], []),
                empty=True,
            )
        )
    for n, t in enumerate(teams):
        rows = []
        for i, day in enumerate(t.days):
            costs = [t.by_model[m][i] for m in t.by_model]
            rows.append([day.isoformat(), *map(usd, costs), usd(sum(costs))])
            for model, cost in zip(t.by_model, costs, strict=True):
                if cost:
                    report.csv_rows.append(
                        ["daily_cost", t.team_slug, day.isoformat(), model, "cost_usd", exact(cost)]
                    )
        if n < MAX_TEAM_CHARTS:
            report.sections.append(_team_cost_section(n, t, rows))
    if len(teams) > MAX_TEAM_CHARTS:
        report.notices.append(
            f"Daily cost is charted for the {MAX_TEAM_CHARTS} most expensive of {len(teams)} "
            "teams; choose a team to see another. The CSV holds them all."
        )


def _team_cost_section(n: int, t: analytics.TeamDailyCost, rows: list[list[str]]) -> Section:
    title = f"Daily cost of team {t.team_slug}, by model"
    chart = charts.stacked_bars(
        chart_id=f"cost-{n}",
        title=title,
        labels=[_day(d) for d in t.days],
        series=[charts.Series(m, [float(c) for c in costs]) for m, costs in t.by_model.items()],
        fmt=usd,
        tick_fmt=usd_tick,
        y_title="cost (USD)",
    )
    table = Table(f"{title} (USD)", ["Day", *t.by_model, "Total"], rows)
    about = f"Total {usd(t.total)}; each bar is a day, each segment a requested model."
    return Section(f"cost-{n}", title, about, table, chart)


def _latency_section(report: Report) -> None:
    days = analytics.latency_trend(period=report.period, team=report.team)
    labels = [_day(d.day) for d in days]
    chart = charts.lines(
        chart_id="latency",
        title="Latency p50 and p95 per day",
        labels=labels,
        series=[
            charts.Series("p50", [d.p50_ms for d in days]),
            charts.Series("p95", [d.p95_ms for d in days]),
        ],
        fmt=lambda v: f"{v:,.0f} ms",
        y_title="latency (ms)",
    )
    rows = []
    for d in days:
        rows.append([d.day.isoformat(), str(d.requests), ms(d.p50_ms), ms(d.p95_ms)])
        for name, value in (("p50", d.p50_ms), ("p95", d.p95_ms)):
            if value is not None:
                report.csv_rows.append(
                    ["latency", _scope(report), d.day.isoformat(), name, "ms", f"{value:.3f}"]
                )
    table = Table("Latency per day", ["Day", "Requests", "p50", "p95"], rows)
    report.sections.append(
        Section(
            "latency",
            "Latency",
            "Total request latency as the gateway saw it, p50 and p95 of all requests each day.",
            table,
            chart,
            empty=not any(d.requests for d in days),
        )
    )


def _scope(report: Report) -> str:
    return report.team.slug if report.team else "(all)"


def _error_section(report: Report) -> None:
    e = analytics.error_rates(period=report.period, team=report.team)
    labels = [_day(d) for d in e.days]
    series = [charts.Series(kind, e.rate(counts)) for kind, counts in e.by_type.items()]
    series.append(charts.Series("all errors", e.rate(e.errors), dashed=True))
    chart = charts.lines(
        chart_id="errors",
        title="Error rate per day, by error type",
        labels=labels,
        series=series,
        fmt=lambda v: f"{v * 100:.1f}%",
        y_title="share of requests",
    )
    rows = []
    for n, day in enumerate(e.days):
        rates = [s.values[n] for s in series]
        rows.append([day.isoformat(), str(e.requests[n]), str(e.errors[n]), *map(pct, rates)])
        for s, rate in zip(series, rates, strict=True):
            if rate is not None:
                report.csv_rows.append(
                    ["error_rate", _scope(report), day.isoformat(), s.name, "rate", f"{rate:.6f}"]
                )
    headers = ["Day", "Requests", "Errors", *(s.name for s in series)]
    report.sections.append(
        Section(
            "errors",
            "Error rates",
            "Errors of each type (and all errors) divided by the day's requests.",
            Table("Error rate per day", headers, rows),
            chart,
            empty=not any(e.requests),
        )
    )


def _top_sections(report: Report) -> None:
    tops = (
        ("keys", "Top keys by cost", analytics.top_keys),
        ("projects", "Top projects by cost", analytics.top_projects),
        ("use_cases", "Top use cases by cost", analytics.top_use_cases),
    )
    for key, title, selector in tops:
        rows = selector(period=report.period, team=report.team)
        table_rows = []
        for rank, r in enumerate(rows, 1):
            table_rows.append([str(rank), r.label, r.team_slug, str(r.requests), usd(r.cost)])
            report.csv_rows.append(
                [f"top_{key}", r.team_slug, "", r.label, "cost_usd", exact(r.cost)]
            )
            report.csv_rows.append(
                [f"top_{key}", r.team_slug, "", r.label, "requests", str(r.requests)]
            )
        headers = ["#", "Name", "Team", "Requests", "Cost"]
        about = f"The {analytics.TOP_LIMIT} largest by cost over the period."
        report.sections.append(
            Section(key, title, about, Table(title, headers, table_rows), empty=not rows)
        )


def _burn_down_section(report: Report, today: date | None) -> None:
    if report.team is None:
        report.notices.append("Choose a team to see its budget burn-down.")
        return
    b = analytics.burn_down(team=report.team, month=report.period.end, today=today)
    month = b.month.strftime("%B %Y")
    series = [charts.Series("spent", [None if v is None else float(v) for v in b.cumulative])]
    if b.budget is not None:
        series.append(charts.Series("ideal", [float(v) for v in b.ideal], dashed=True))
        series.append(charts.Series("budget", [float(b.budget)] * len(b.days), dashed=True))
    chart = charts.lines(
        chart_id="burn",
        title=f"Budget burn-down, {month}",
        labels=[_day(d) for d in b.days],
        series=series,
        fmt=usd,
        tick_fmt=usd_tick,
        y_title="cumulative cost (USD)",
    )
    rows = []
    for n, day in enumerate(b.days):
        spent = b.cumulative[n]
        ideal = b.ideal[n] if b.ideal else None
        rows.append(
            [
                day.isoformat(),
                "—" if spent is None else usd(spent),
                "—" if ideal is None else usd(ideal),
                "—" if b.budget is None else usd(b.budget),
            ]
        )
        team, iso = report.team.slug, day.isoformat()
        if spent is not None:
            report.csv_rows.append(["burn_down", team, iso, "spent", "cost_usd", exact(spent)])
        if ideal is not None:
            report.csv_rows.append(["burn_down", team, iso, "ideal", "cost_usd", exact(ideal)])
    if b.budget is None:
        about = f"Spent {usd(b.spent)} this month; the team has no monthly budget in its policy."
    else:
        report.csv_rows.append(
            ["burn_down", report.team.slug, "", "budget", "cost_usd", exact(b.budget)]
        )
        share = pct(float(b.spent / b.budget)) if b.budget else "—"
        about = (
            f"Spent {usd(b.spent)} of {usd(b.budget)} ({share}); "
            "the ideal line spends the budget evenly over the month."
        )
    headers = ["Day", "Spent to date", "Ideal", "Budget"]
    report.sections.append(
        Section(
            "burn",
            f"Budget burn-down, {month}",
            about,
            Table(f"Budget burn-down, {month}", headers, rows),
            chart,
        )
    )


def build(*, period: Period, team: Team | None = None, today: date | None = None) -> Report:
    report = Report(period, team)
    _cost_sections(report)
    _latency_section(report)
    _error_section(report)
    _top_sections(report)
    _burn_down_section(report, today)
    return report
