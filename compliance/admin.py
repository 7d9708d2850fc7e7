"""The compliance registry's admin pages."""

from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import DataProcessingAgreement, RequirementSet


@admin.register(DataProcessingAgreement)
class AgreementAdmin(SimpleHistoryAdmin):
    list_display = ["party", "status", "expires_on", "baa", "owner", "next_review_on"]


@admin.register(RequirementSet)
class RequirementSetAdmin(SimpleHistoryAdmin):
    list_display = ["holder", "requirements"]


from . import admin_reminders, admin_report  # noqa: E402, F401
