"""Model groups (strategy, fallbacks) and routing rules in the admin.

Both are read into the routing table, so a change is served within
GATEWAY_ROUTING_CACHE_TTL_S. The models' clean() checks what the configuration loader checks.
"""

from django.contrib import admin
from unfold.admin import ModelAdmin

from .models import Deployment, ModelGroup, RoutingRule


@admin.register(ModelGroup)
class ModelGroupAdmin(ModelAdmin):
    list_display = ["name", "mode", "strategy", "fallbacks", "context_fallbacks", "deployments"]
    list_filter = ["mode", "strategy"]
    search_fields = ["name"]
    fields = ["name", "mode", "strategy", "fallbacks", "context_fallbacks"]

    @admin.display(description="Deployments")
    def deployments(self, obj: ModelGroup) -> int:
        return Deployment.objects.filter(mode=obj.mode, model_name=obj.name, enabled=True).count()


@admin.register(RoutingRule)
class RoutingRuleAdmin(ModelAdmin):
    list_display = ["__str__", "position", "team", "tag", "model", "group", "enabled"]
    list_editable = ["position", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["tag", "model", "group", "team__slug"]
    list_select_related = ["team"]
    autocomplete_fields = ["team"]
    fields = ["position", "team", "tag", "model", "group", "enabled"]
