"""The audit log in the admin: read-only for everyone (superusers included), searchable,
filterable, and exportable as CSV (the filtered list, or the selected rows)."""

import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join

from .capture import AUDITED
from .export import csv_response
from .masking import plain
from .models import AuditEvent

# Actions the services name (tenants/services.py); the rest are create, update, delete.
ACTIONS = ("create", "update", "delete", "rotate", "revoke", "limits_set", "role_change")


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter with a fixed list: a DISTINCT over the whole table on every page would not be."""

    values: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [(value, value) for value in self.values]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class ActionFilter(_ChoiceFilter):
    title = "action"
    parameter_name = "action"
    values = ACTIONS


class ObjectTypeFilter(_ChoiceFilter):
    title = "object type"
    parameter_name = "object_type"
    values = tuple(sorted(label.lower() for label in AUDITED))


@admin.action(description="Export selected events to CSV")
def export_selected(modeladmin, request, queryset):
    return csv_response(queryset.order_by("-at", "-id"), asynchronous=_served_by_asgi(request))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "at",
        "actor_repr",
        "source",
        "action",
        "object_type",
        "object_repr",
        "team_id",
        "ip",
    ]
    list_filter = ["source", ActionFilter, ObjectTypeFilter, ("at", admin.DateFieldListFilter)]
    # Text fields by substring; ids and request ids exactly (they are indexed or short).
    search_fields = ["actor_repr", "object_repr", "^object_type", "=object_id", "=request_id"]
    # No date_hierarchy: it would scan the whole table for its list of years.
    actions = [export_selected]
    # The table only grows: no COUNT(*) of all of it on every page.
    show_full_result_count = False
    list_per_page = 50
    fields = [
        "at",
        "actor_repr",
        "actor_id",
        "source",
        "ip",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "object_link",
        "team_id",
        "changes_table",
        "request_id",
    ]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="open")
    def object_link(self, obj: AuditEvent):
        """The object's own admin page, by its type's name (the audit app imports no model);
        for a deleted object the admin says it no longer exists."""
        app_label, _, model_name = obj.object_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model_name}_change", args=[obj.object_id])
        except NoReverseMatch:
            return "-"
        return format_html('<a href="{}">{}</a>', url, obj.object_repr or obj.object_id)

    @admin.display(description="changes")
    def changes_table(self, obj: AuditEvent):
        if not obj.changes:
            return "-"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            (
                (name, _shown(pair[0]), _shown(pair[1]))
                if isinstance(pair, list) and len(pair) == 2
                else (name, "", _shown(pair))
                for name, pair in sorted(obj.changes.items())
            ),
        )
        return format_html(
            "<table><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_view)
        return [
            path("export.csv", export, name="audit_auditevent_export"),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The changelist's rows (same filters and search) as CSV, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        return csv_response(changelist.get_queryset(request), asynchronous=_served_by_asgi(request))

    def changelist_view(self, request, extra_context=None):
        query = request.GET.urlencode()
        url = reverse("admin:audit_auditevent_export") + (f"?{query}" if query else "")
        extra_context = {**(extra_context or {}), "export_url": url}
        return super().changelist_view(request, extra_context=extra_context)


def _served_by_asgi(request) -> bool:
    return isinstance(request, ASGIRequest)


def _shown(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(plain(value), ensure_ascii=False)
