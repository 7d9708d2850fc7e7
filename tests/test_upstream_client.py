"""The shared upstream client (infra/http.py), against a real local server."""

import asyncio

from infra import http
from tests.fake_upstream import ServerThread


async def _cookie_setting_app(scope, receive, send):
    """Sets a cookie on every response and echoes back the Cookie header it received."""
    if scope["type"] != "http":
        return
    cookie = dict(scope["headers"]).get(b"cookie", b"")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"set-cookie", b"session=tenant-a; Path=/"),
                (b"content-type", b"text/plain"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": cookie})


def test_cookies_from_one_upstream_response_never_reach_the_next_request():
    server = ServerThread(_cookie_setting_app)
    server.start()

    async def two_calls() -> list[bytes]:
        client = http.client()
        try:
            return [(await client.get(f"{server.url}/")).content for _ in range(2)]
        finally:
            await client.aclose()

    try:
        first, second = asyncio.run(two_calls())
    finally:
        server.stop()
    assert first == b""
    assert second == b""  # the Set-Cookie of the first response was not stored


def test_redirects_are_not_followed():
    async def redirecting_app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", b"http://169.254.169.254/latest/meta-data/")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    server = ServerThread(redirecting_app)
    server.start()

    async def call() -> int:
        client = http.client()
        try:
            return (await client.get(f"{server.url}/")).status_code
        finally:
            await client.aclose()

    try:
        status = asyncio.run(call())
    finally:
        server.stop()
    assert status == 307


def test_lifespan_shutdown_closes_the_loops_upstream_client():
    from gateway.asgi import application

    async def run() -> tuple[list[str], bool, bool]:
        client = http.client()
        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive():
            return inbox.pop(0)

        async def send(message):
            sent.append(message["type"])

        await application({"type": "lifespan"}, receive, send)
        replacement = http.client()
        await replacement.aclose()
        return sent, client.is_closed, replacement is client

    sent, closed, reused = asyncio.run(run())
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert closed
    assert not reused
