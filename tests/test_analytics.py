"""The analytics selectors (billing/analytics.py): sums over DailyUsage rows, percentiles merged
from latency histograms, error rates, top lists and the budget burn-down."""

import bisect
import random
from datetime import date
from decimal import Decimal

import pytest

from billing import analytics
from billing.analytics import Period, PeriodError
from billing.models import LATENCY_BUCKETS_MS
from policies.models import Policy
from tenants.services import api_key_issue

from .factories import DailyUsageFactory, ProjectFactory

NOV = Period(date(2026, 11, 1), date(2026, 11, 30))
BUCKETS = len(LATENCY_BUCKETS_MS) + 1


def hist(**counts_by_index) -> list[int]:
    counts = [0] * BUCKETS
    for name, count in counts_by_index.items():
        counts[int(name.removeprefix("b"))] = count
    return counts


def histogram_of(latencies: list[float]) -> list[int]:
    counts = [0] * BUCKETS
    for value in latencies:
        counts[bisect.bisect_left(LATENCY_BUCKETS_MS, value)] += 1
    return counts


# --- Period --------------------------------------------------------------------------------------
def test_period_defaults_to_the_current_month_so_far():
    assert Period.parse(None, None, today=date(2026, 11, 17)) == Period(
        date(2026, 11, 1), date(2026, 11, 17)
    )


def test_period_reads_iso_dates():
    assert Period.parse("2026-10-05", "2026-10-09").days == [
        date(2026, 10, d) for d in range(5, 10)
    ]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-13-01", "2026-12-02", "YYYY-MM-DD"),
        ("yesterday", None, "YYYY-MM-DD"),
        ("2026-11-10", "2026-11-01", "after end"),
        ("2024-01-01", "2026-01-01", "at most 366 days"),
    ],
)
def test_bad_periods_are_refused_with_a_reason(start, end, message):
    with pytest.raises(PeriodError, match=message):
        Period.parse(start, end, today=date(2026, 11, 17))


# --- Daily cost ----------------------------------------------------------------------------------
def test_daily_cost_sums_rows_per_team_day_and_model(team, other_team):
    rows = [
        DailyUsageFactory(team=team, day=date(2026, 11, 2), model="big", cost_usd="1.25"),
        DailyUsageFactory(
            team=team, day=date(2026, 11, 2), model="big", cost_usd="0.75", use_case="search"
        ),
        DailyUsageFactory(team=team, day=date(2026, 11, 2), model="small", cost_usd="0.10"),
        DailyUsageFactory(team=team, day=date(2026, 11, 4), model="small", cost_usd="0.30"),
        DailyUsageFactory(team=other_team, day=date(2026, 11, 2), model="big", cost_usd="9"),
        # Outside the period: never counted.
        DailyUsageFactory(team=team, day=date(2026, 10, 31), model="big", cost_usd="100"),
    ]
    result = {t.team_slug: t for t in analytics.daily_cost(period=NOV)}
    assert list(result) == ["ads", "search"]  # the most expensive team first
    search = result["search"]
    assert len(search.days) == 30
    for model in ("big", "small"):
        for n, day in enumerate(search.days):
            expected = sum(
                (Decimal(r.cost_usd) for r in rows
                 if r.team == team and r.model == model and r.day == day),
                Decimal(0),
            )  # fmt: skip
            assert search.by_model[model][n] == expected
    assert list(search.by_model) == ["big", "small"]  # by total cost
    in_period = [r for r in rows if r.team == team and r.day >= NOV.start]
    assert search.total == sum(Decimal(r.cost_usd) for r in in_period)


def test_daily_cost_of_one_team_leaves_the_others_out(team, other_team):
    DailyUsageFactory(team=team, model="mine", cost_usd="1")
    DailyUsageFactory(team=other_team, model="theirs", cost_usd="2")
    result = analytics.daily_cost(period=NOV, team=team)
    assert [t.team_slug for t in result] == ["search"]
    assert list(result[0].by_model) == ["mine"]


# --- Latency -------------------------------------------------------------------------------------
def test_percentile_interpolates_inside_the_bucket():
    # 100 requests in (75, 100] ms: the median is halfway through it.
    assert analytics.histogram_percentile(hist(b11=100), 0.5) == pytest.approx(87.5)
    assert analytics.histogram_percentile(hist(b11=100), 0.95) == pytest.approx(98.75)


def test_percentile_of_an_empty_histogram_is_none():
    assert analytics.histogram_percentile([0] * BUCKETS, 0.5) is None


def test_percentile_in_the_open_ended_bucket_is_its_lower_bound():
    assert analytics.histogram_percentile(hist(b30=5), 0.95) == LATENCY_BUCKETS_MS[-1]


def test_latency_trend_merges_histograms_across_rows(team, other_team):
    day = date(2026, 11, 3)
    # 90 fast requests on one model, 10 slow ones on another: the p95 sits among the slow ones,
    # which no average of the two rows' own p95s would give.
    DailyUsageFactory(team=team, day=day, model="fast", requests=90, latency_hist=hist(b11=90))
    DailyUsageFactory(team=team, day=day, model="slow", requests=10, latency_hist=hist(b15=10))
    DailyUsageFactory(team=other_team, day=day, requests=50, latency_hist=hist(b25=50))
    points = {p.day: p for p in analytics.latency_trend(period=NOV, team=team)}
    assert points[day].requests == 100
    assert points[day].p50_ms == pytest.approx(75 + 25 * 50 / 90)
    assert points[day].p95_ms == pytest.approx(300 + 200 * (95 - 90) / 10)
    assert points[date(2026, 11, 4)].p50_ms is None  # no traffic: no point, not zero


def test_merged_percentiles_stay_within_a_bucket_of_the_exact_ones(team):
    rng = random.Random(9)
    day = date(2026, 11, 5)
    everything = []
    for model, scale in (("a", 40), ("b", 400), ("c", 2500)):
        latencies = [rng.expovariate(1 / scale) + 1 for _ in range(400)]
        everything += latencies
        DailyUsageFactory(team=team, day=day, model=model, latency_hist=histogram_of(latencies))
    point = next(p for p in analytics.latency_trend(period=NOV) if p.day == day)
    everything.sort()
    for q, got in ((0.5, point.p50_ms), (0.95, point.p95_ms)):
        exact = everything[int(q * len(everything)) - 1]
        n = bisect.bisect_left(LATENCY_BUCKETS_MS, exact)
        low = LATENCY_BUCKETS_MS[n - 1] if n else 0
        assert low <= got <= LATENCY_BUCKETS_MS[n], (q, exact, got)


# --- Errors --------------------------------------------------------------------------------------
def test_error_rates_are_errors_of_each_type_over_requests(team):
    day = date(2026, 11, 6)
    DailyUsageFactory(
        team=team, day=day, requests=80, errors=6,
        errors_by_type={"rate_limit_exceeded": 4, "upstream_error": 2},
    )  # fmt: skip
    DailyUsageFactory(
        team=team, day=day, model="b", requests=20, errors=1, errors_by_type={"upstream_error": 1}
    )
    e = analytics.error_rates(period=NOV, team=team)
    n = e.days.index(day)
    assert (e.requests[n], e.errors[n]) == (100, 7)
    assert list(e.by_type) == ["rate_limit_exceeded", "upstream_error"]
    assert e.rate(e.by_type["rate_limit_exceeded"])[n] == pytest.approx(4 / 100)
    assert e.rate(e.by_type["upstream_error"])[n] == pytest.approx(3 / 100)
    assert e.rate(e.errors)[n] == pytest.approx(7 / 100)
    assert e.rate(e.errors)[n + 1] is None  # a day without requests has no rate


# --- Top lists -----------------------------------------------------------------------------------
def test_top_keys_are_the_ten_most_expensive(team):
    keys = [api_key_issue(team=team, name=f"key-{n}").api_key for n in range(12)]
    for n, key in enumerate(keys):
        for day in (1, 2):
            DailyUsageFactory(
                team=team, day=date(2026, 11, day), api_key=key, key_prefix=key.prefix,
                cost_usd=Decimal(n + 1) / 10, requests=n,
            )  # fmt: skip
    top = analytics.top_keys(period=NOV, team=team)
    assert len(top) == analytics.TOP_LIMIT
    assert [r.label.split(" ")[0] for r in top] == [f"key-{n}" for n in range(11, 1, -1)]
    assert top[0].cost == Decimal("2.4") and top[0].requests == 22
    assert keys[11].prefix in top[0].label


def test_top_projects_and_use_cases(team):
    web, batch = ProjectFactory(team=team, slug="web"), ProjectFactory(team=team, slug="batch")
    DailyUsageFactory(team=team, project=web, use_case="chat", cost_usd="3")
    DailyUsageFactory(team=team, project=web, use_case="", cost_usd="1")
    DailyUsageFactory(team=team, project=batch, use_case="chat", cost_usd="5")
    DailyUsageFactory(team=team, project=None, use_case="summaries", cost_usd="0.5")
    projects = analytics.top_projects(period=NOV, team=team)
    assert [(r.label, r.cost) for r in projects] == [
        ("batch", Decimal(5)), ("web", Decimal(4)), ("(no project)", Decimal("0.5"))
    ]  # fmt: skip
    use_cases = analytics.top_use_cases(period=NOV, team=team)
    assert [(r.label, r.cost) for r in use_cases] == [
        ("chat", Decimal(8)), ("(untagged)", Decimal(1)), ("summaries", Decimal("0.5"))
    ]  # fmt: skip


# --- Burn-down -----------------------------------------------------------------------------------
def test_burn_down_accumulates_daily_cost_against_the_team_budget(team, other_team):
    Policy.objects.create(team=team, monthly_budget_usd=Decimal("300"))
    spend = {1: "10", 2: "5.5", 5: "20"}
    for day, cost in spend.items():
        DailyUsageFactory(team=team, day=date(2026, 11, day), cost_usd=cost)
    DailyUsageFactory(team=other_team, day=date(2026, 11, 1), cost_usd="1000")
    DailyUsageFactory(team=team, day=date(2026, 10, 31), cost_usd="1000")
    b = analytics.burn_down(team=team, month=date(2026, 11, 20), today=date(2026, 11, 10))
    assert len(b.days) == 30 and b.budget == Decimal(300)
    running = Decimal(0)
    for n, day in enumerate(b.days):
        running += Decimal(spend.get(day.day, "0"))
        assert b.cumulative[n] == (running if day.day <= 10 else None)
        assert b.ideal[n] == Decimal(300) * (n + 1) / 30
    assert b.spent == Decimal("35.5")


def test_burn_down_without_a_budget_has_no_ideal_line(team):
    DailyUsageFactory(team=team, day=date(2026, 11, 1), cost_usd="2")
    b = analytics.burn_down(team=team, month=date(2026, 11, 1), today=date(2026, 12, 1))
    assert b.budget is None and b.ideal is None
    assert b.cumulative[-1] == Decimal(2)  # a past month is complete
