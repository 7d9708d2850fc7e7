"""The Grafana dashboard (docker/grafana/gateway-dashboard.json) queries only metrics that
/metrics exposes, and shows every one of them."""

import json
import re

from tests.helpers_metrics import parse
from tests.helpers_proc import ROOT

DASHBOARD = ROOT / "docker" / "grafana" / "gateway-dashboard.json"
METRIC = re.compile(r"\bgateway_[a-z_]+")


def _queries(dashboard: dict) -> list[str]:
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    queries += [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return queries


def test_every_metric_the_dashboard_queries_is_exposed(gateway, settings):
    settings.GATEWAY_METRICS_TOKEN = ""
    dashboard = json.loads(DASHBOARD.read_text())
    with gateway.http() as http:
        exposed = parse(http.get("/metrics").text)

    used = {name for query in _queries(dashboard) for name in METRIC.findall(query)}

    assert used
    assert used <= exposed.names(), sorted(used - exposed.names())
    # And the other way: each of the gateway's metric families is on the dashboard.
    shown = {family for family in exposed.families if family.startswith("gateway_")}
    missing = {f for f in shown if not any(name.startswith(f) for name in used)}
    assert not missing, sorted(missing)


def test_every_panel_has_a_datasource_and_a_query():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
