"""The compliance report (compliance/report.py) as CSV, plain text and HTML: what the admin's
pages, its download and `manage.py compliancereport` hand out."""

import csv
import io

from django.conf import settings
from django.template.loader import render_to_string

from .report import Report

CSV_COLUMNS = [
    "section",
    "provider",
    "team",
    "requests",
    "dpa_status",
    "baa_status",
    "scc",
    "regions",
    "retention_days",
    "zero_data_retention",
    "training_opt_out",
    "sub_processors",
    "privacy_mode",
    "requirements",
    "gap",
    "from",
    "to",
]


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _terms(row, today) -> dict:
    a = row.agreement
    return {
        "dpa_status": row.standing(today),
        "baa_status": row.baa_standing(today),
        "scc": _yes(a.scc) if a else "",
        "regions": " ".join(a.regions) if a and a.regions else ("any" if a else ""),
        "retention_days": "" if a is None or a.retention_days is None else a.retention_days,
        "zero_data_retention": _yes(a.zero_data_retention) if a else "",
        "training_opt_out": _yes(a.training_opt_out) if a else "",
        "sub_processors": " ".join(a.sub_processors) if a and a.sub_processors else "",
    }


def _teams(teams) -> str:
    return "; ".join(f"{slug}: {n}" for slug, n in teams)


def report_csv(report: Report) -> str:
    """One table: a row per provider and team that used it, per team, and per gap; the
    `section` column says which."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="raise")
    writer.writeheader()
    for row in report.providers:
        terms = _terms(row, report.today)
        for team, n in row.teams:
            writer.writerow(
                {"section": "provider", "provider": row.name, "team": team, "requests": n, **terms}
            )
    for team in report.teams:
        writer.writerow(
            {
                "section": "team",
                "team": team.slug,
                "requests": team.requests,
                "privacy_mode": team.privacy_mode,
                "requirements": " ".join(team.requirements),
            }
        )
    for gap in report.gaps:
        writer.writerow(
            {
                "section": f"gap:{gap.kind}",
                "provider": gap.provider,
                "team": _teams(gap.teams),
                "requests": gap.requests if gap.kind == "traffic" else "",
                "gap": gap.detail,
                "from": gap.start.isoformat() if gap.start else "",
                "to": gap.end.isoformat() if gap.end else "",
            }
        )
    return out.getvalue()


def report_text(report: Report) -> str:
    lines = [
        f"Compliance report {report.since} to {report.until} (standing as of {report.today})",
        "",
        "Providers used",
    ]
    if not report.providers:
        lines.append("  none")
    for row in report.providers:
        terms = _terms(row, report.today)
        lines.append(f"  {row.name}: {row.requests} requests ({_teams(row.teams)})")
        lines.append(
            f"    DPA {terms['dpa_status']}; BAA {terms['baa_status']}; SCCs "
            f"{terms['scc'] or '-'}; regions {terms['regions'] or '-'}; retention "
            f"{terms['retention_days'] or '-'} days; ZDR {terms['zero_data_retention'] or '-'}; "
            f"training opt-out {terms['training_opt_out'] or '-'}"
        )
        for sub in row.sub_agreements:
            lines.append(f"    sub-processor {sub.sub_processor}: {sub.standing(report.today)}")
    lines += ["", "Teams"]
    for team in report.teams:
        flag = "  << FULL CONTENT KEPT" if team.full_content else ""
        lines.append(
            f"  {team.slug} ({team.organization}): privacy {team.privacy_mode}; requirements "
            f"{', '.join(team.requirements) or 'none'}; {team.requests} requests{flag}"
        )
    lines += ["", "Gaps"]
    if not report.gaps:
        lines.append("  none")
    for gap in report.gaps:
        if gap.kind == "traffic":
            lines.append(
                f"  {gap.provider}: {gap.requests} requests without a valid agreement "
                f"({gap.detail}) from {gap.start:%Y-%m-%d %H:%M} to {gap.end:%Y-%m-%d %H:%M} "
                f"({_teams(gap.teams)})"
            )
        else:
            lines.append(f"  {gap.provider}: {gap.detail}")
    return "\n".join(lines) + "\n"


def html_context(report: Report) -> dict:
    """What the report's templates show, with each standing worked out as of the report's day."""
    return {
        "report": report,
        "time_zone": settings.TIME_ZONE,
        "providers": [
            {
                "row": row,
                "terms": _terms(row, report.today),
                "subs": [(a.sub_processor, a.standing(report.today)) for a in row.sub_agreements],
            }
            for row in report.providers
        ],
        "full_teams": [team for team in report.teams if team.full_content],
        "traffic_gaps": [gap for gap in report.gaps if gap.kind == "traffic"],
        "expiring": [gap for gap in report.gaps if gap.kind == "expiring"],
    }


def report_html(report: Report, *, request=None) -> str:
    """The printable page: whole, with its own print styles and no navigation."""
    return render_to_string("compliance/report_print.html", html_context(report), request=request)
