"""Personal access tokens in the admin: read-only (a token is created by its user, from the
API or `manage.py createtoken`), with a revoke action that goes through the service."""

from django.contrib import admin, messages

from .models import PersonalAccessToken
from .services import pat_revoke


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scopes", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    raw_id_fields = ["user"]
    readonly_fields = [
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("api.change_personalaccesstoken")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            pat_revoke(token=token, actor=request.user)
            count += 1
        self.message_user(request, f"revoked {count} token(s)", messages.SUCCESS)
