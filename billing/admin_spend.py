"""The spend column on the teams' and keys' admin pages: this UTC month's cost from the daily
rollups, for the whole page in one query (never a sum over the request log per row).

tenants must not import billing (the layers), so their admin classes are subclassed here, as
policies does, and registered again in their place.
"""

from django.contrib import admin
from unfold.views import ChangeList

from infra.money import format_usd
from tenants.models import ApiKey, Team

from .dashboard import spend_this_month


def _spend_changelist(field: str) -> type[ChangeList]:
    class SpendChangeList(ChangeList):
        def get_results(self, request) -> None:
            super().get_results(request)
            spend = spend_this_month(field, [obj.pk for obj in self.result_list])
            for obj in self.result_list:
                obj.spend_this_month = spend.get(obj.pk)

    return SpendChangeList


def _with_spend(model, field: str) -> None:
    base = type(admin.site._registry[model])
    changelist = _spend_changelist(field)

    @admin.display(description="spend this month")
    def spend(modeladmin, obj) -> str:
        if not hasattr(obj, "spend_this_month"):  # the change page: one row
            obj.spend_this_month = spend_this_month(field, [obj.pk]).get(obj.pk)
        return format_usd(obj.spend_this_month or 0)

    list_display = list(base.list_display)
    # After the status (keys) or the name (teams): visible without scrolling.
    at = list_display.index("status") + 1 if "status" in list_display else 2
    list_display.insert(at, "spend")
    subclass = type(
        base.__name__,
        (base,),
        {
            "list_display": list_display,
            "readonly_fields": [*base.readonly_fields, "spend"],
            **({"fields": [*base.fields, "spend"]} if base.fields else {}),
            "spend": spend,
            "get_changelist": lambda self, request, **kwargs: changelist,
        },
    )
    admin.site.unregister(model)
    admin.site.register(model, subclass)


_with_spend(Team, "team_id")
_with_spend(ApiKey, "api_key_id")
