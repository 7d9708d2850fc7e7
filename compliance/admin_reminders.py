"""Reminders sent about the registry's dates (compliance/reminders.py), read-only: the record of
what went out, to whom, and how each delivery ended. Nobody adds, edits or deletes them here."""

from django.contrib import admin
from unfold.admin import ModelAdmin

from .models import ComplianceReminder


@admin.register(ComplianceReminder)
class ComplianceReminderAdmin(ModelAdmin):
    list_display = [
        "party",
        "kind",
        "due_on",
        "days_before",
        "created_at",
        "email_status",
        "webhook_status",
    ]
    list_filter = ["kind", "email_status", "webhook_status", "due_on"]
    search_fields = ["party"]
    date_hierarchy = "created_at"
    fields = [
        "agreement",
        "party",
        "kind",
        "due_on",
        "days_before",
        "created_at",
        "recipients",
        "email_status",
        "webhook_status",
        "attempts",
        "attempt_log",
        "last_error",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
