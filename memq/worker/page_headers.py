"""Security headers on the daemon's answers: the viewer's pages (anything outside ``/api/``)
get a Content-Security-Policy that forbids inline script and framing, and every answer gets
``nosniff`` so that a JSON body is never taken for a script or a page."""

from __future__ import annotations

from typing import Final

from starlette.types import Message, Send

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
API_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = ((b"x-content-type-options", b"nosniff"),)
PAGE_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    *API_HEADERS,
    (b"referrer-policy", b"no-referrer"),
)


def is_page(path: str) -> bool:
    """Whether ``path`` is one of the viewer's pages or assets rather than the JSON API."""
    return not path.startswith("/api/")


def adding_headers(send: Send, path: str) -> Send:
    """``send`` with the headers for ``path`` added to the answer's start (those a route set
    itself are kept)."""
    extra = PAGE_HEADERS if is_page(path) else API_HEADERS

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(header for header in extra if header[0] not in present)
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
