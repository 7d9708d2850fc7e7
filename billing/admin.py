from django.contrib import admin

from .models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read-only: the request log is evidence; nobody edits it by hand."""

    list_display = [
        "created_at",
        "request_id",
        "team_slug",
        "key_prefix",
        "requested_model",
        "provider_name",
        "status_code",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "stream",
    ]
    list_filter = [
        "status_code",
        "stream",
        "endpoint",
        "provider_name",
        "team_slug",
        "usage_estimated",
    ]
    search_fields = ["request_id", "team_slug", "key_prefix", "requested_model"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # COUNT(*) on a big log table is slow

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
