"""The compliance report in the admin: a page with the period's report, its printable version
(no navigation, print styles) and its CSV download. Listed on the admin index under Compliance;
whoever may view agreements may read it (compliance officers and auditors included)."""

import datetime

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from unfold.admin import ModelAdmin

from .models import ComplianceReport
from .report import compliance_report
from .report_formats import html_context, report_csv, report_html

DEFAULT_DAYS = 30  # the period shown when none is asked for: the last 30 days, today included


class PeriodForm(forms.Form):
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def period(self) -> tuple[datetime.date, datetime.date]:
        today = timezone.localdate()
        data = self.cleaned_data if self.is_valid() else {}
        until = data.get("until") or today
        since = data.get("since") or until - datetime.timedelta(days=DEFAULT_DAYS - 1)
        return (since, until) if since <= until else (until, since)


@admin.register(ComplianceReport)
class ComplianceReportAdmin(ModelAdmin):
    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("compliance.view_dataprocessingagreement")

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        # Before the model's own URLs (whose list is this report, and the rest refused), so
        # that "print/" and "csv/" are not read as an object's id.
        wrap = self.admin_site.admin_view
        return [
            path("print/", wrap(self.print_view), name="compliance_compliancereport_print"),
            path("csv/", wrap(self.csv_view), name="compliance_compliancereport_csv"),
            *super().get_urls(),
        ]

    def _report(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = PeriodForm(request.GET or None)
        since, until = form.period()
        return form, compliance_report(since=since, until=until)

    def _query(self, report) -> str:
        return f"?since={report.since}&until={report.until}"

    def changelist_view(self, request, extra_context=None):
        form, report = self._report(request)
        context = {
            **self.admin_site.each_context(request),
            **html_context(report),
            "title": "Compliance report",
            "form": form,
            "opts": self.model._meta,
            "print_url": reverse("admin:compliance_compliancereport_print") + self._query(report),
            "csv_url": reverse("admin:compliance_compliancereport_csv") + self._query(report),
        }
        return TemplateResponse(request, "compliance/report_admin.html", context)

    def print_view(self, request):
        _, report = self._report(request)
        return HttpResponse(report_html(report, request=request))

    def csv_view(self, request):
        _, report = self._report(request)
        response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
        name = f"compliance-report-{report.since}-{report.until}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
