from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from billing import views as billing_views
from gateway import shutdown
from gateway.admin_login import admin_login
from gateway.metrics import metrics_view
from gateway.proxy import azure, messages
from gateway.proxy import views as proxy
from portal.views import auth as portal_auth


def healthz(request):
    """Liveness: the process answers. Readiness of dependencies is /readyz."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the process is not stopping, the dependencies answer and it has a routing
    and a policy table.

    `routing` says how old the table is, which providers it leaves out and why, and how many
    rebuilds have failed in a row: a table that keeps ageing means the rebuilds fail. `policies`
    says the same of the policy table, `compliance` of the compliance table.
    """
    from django.db import connection

    from compliance.snapshot import compliance_table_cache
    from infra.state import get_state
    from policies.snapshot import policy_table_cache
    from routing.selectors import routing_table_cache

    if shutdown.is_draining():
        # Stopping (SIGTERM): the balancer must send nothing new here, whatever else holds.
        return JsonResponse({"status": "draining"}, status=503)
    checks = {"database": True, "state": get_state().ping()}
    try:
        connection.ensure_connection()
    except Exception:
        checks["database"] = False
    routing_table_cache.ensure_built()  # the first table, so the first request finds one
    routing = routing_table_cache.status()
    policy_table_cache.ensure_built()
    policies = policy_table_cache.status()
    compliance_table_cache.ensure_built()
    compliance = compliance_table_cache.status()
    ok = all(checks.values()) and all(
        t["age_s"] is not None for t in (routing, policies, compliance)
    )
    return JsonResponse(
        {
            "status": "ok" if ok else "unavailable",
            **checks,
            "routing": routing,
            "policies": policies,
            "compliance": compliance,
        },
        status=200 if ok else 503,
    )


urlpatterns = [
    # The front door: the team portal, which sends whoever is not signed in to its login.
    path("", RedirectView.as_view(url="/portal/", permanent=False), name="home"),
    path("v1/chat/completions", proxy.chat_completions),
    path("v1/embeddings", proxy.embeddings),
    # Anthropic's Messages API, for the anthropic SDK (gateway/proxy/messages.py).
    path("v1/messages", messages.messages),
    path("v1/messages/count_tokens", messages.count_tokens),
    path("v1/models", proxy.models),
    # <path:>: a model name may hold slashes ("meta-llama/Llama-3.1-8B").
    path("v1/models/<path:model>", proxy.model),
    re_path(r"^v1/(?P<path>.*)$", proxy.unknown),
    # Azure OpenAI-style paths, for the AzureOpenAI client; {model} is a public model name.
    path("openai/deployments/<path:model>/chat/completions", azure.chat_completions),
    path("openai/deployments/<path:model>/embeddings", azure.embeddings),
    path("openai/models", azure.models),
    path("openai/models/<path:model>", azure.model),
    re_path(r"^openai/(?P<path>.*)$", proxy.unknown),
    # Before the admin's own URLs, so that its login (and every link to admin:login) is throttled.
    path("admin/login/", admin_login),
    # Every team's analytics, for staff with the rollups' view permission (billing/views.py).
    path(
        "admin/analytics/",
        admin.site.admin_view(billing_views.admin_analytics),
        name="admin-analytics",
    ),
    path("admin/", admin.site.urls),
    # Team members sign in here (not staff: the admin's login refuses them). The portal's own
    # sign-in form under another name (settings.LOGIN_URL, kept for existing links).
    path("accounts/login/", portal_auth.login, name="login"),
    # The team portal: keys, members, spend (portal/).
    path("portal/", include("portal.urls")),
    path(
        "teams/<slug:team_slug>/analytics/",
        billing_views.team_analytics,
        name="team-analytics",
    ),
    # The management API (api/urls.py): /api/v1/, /api/schema/, /api/docs/.
    path("api/", include("api.urls")),
    path("healthz", healthz),
    path("readyz", readyz),
    # Served without middleware, like /v1 (gateway/asgi.py); protected (metrics.py).
    path("metrics", metrics_view),
]
