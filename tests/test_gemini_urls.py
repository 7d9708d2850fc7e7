"""Where the gemini adapter sends a request: Google's endpoint unless api_base says otherwise,
the model one quoted path segment (a "models/" prefix tolerated), and the key in
x-goog-api-key, never in the URL."""

from routing.credentials import Credentials
from routing.providers import get_adapter
from routing.selectors import Route

KEY = "AIza-gemini-url-test-key"


def _route(api_base: str, model: str) -> Route:
    return Route(
        deployment_id=1,
        model_name="m",
        upstream_model=model,
        mode="chat",
        provider_id=1,
        provider_name="gemini",
        provider_kind="gemini",
        api_base=api_base,
        credentials=Credentials({"api_key": KEY}),
    )


def test_without_api_base_requests_go_to_googles_endpoint():
    adapter = get_adapter("gemini")
    route = _route("", "gemini-2.5-flash")
    assert adapter._url(route, "generateContent") == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert adapter._url(route, "streamGenerateContent", "?alt=sse") == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
        ":streamGenerateContent?alt=sse"
    )


def test_a_models_prefix_is_tolerated_and_an_odd_model_id_stays_one_segment():
    adapter = get_adapter("gemini")
    assert adapter._url(_route("http://127.0.0.1:9/", "models/gemini-pro"), "x") == (
        "http://127.0.0.1:9/v1beta/models/gemini-pro:x"
    )
    assert adapter._url(_route("http://127.0.0.1:9", "a/../b?key=1"), "x") == (
        "http://127.0.0.1:9/v1beta/models/a%2F..%2Fb%3Fkey%3D1:x"
    )


def test_the_key_is_sent_in_x_goog_api_key_and_not_in_the_url():
    adapter = get_adapter("gemini")
    route = _route("", "gemini-2.5-flash")
    headers = adapter._headers(route, {"x-request-id": "r"})
    assert headers["x-goog-api-key"] == KEY
    assert "authorization" not in headers
    assert KEY not in adapter._url(route, "generateContent")
