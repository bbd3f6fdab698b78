"""The viewer's page: ``GET /`` and its assets under ``/static/``, shipped in the package
(``memq/worker/http/static``). They hold no data and are served without credentials; the page
reads everything from ``/api/*`` with its session cookie (see ``session_auth``)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

STATIC_DIR: Final = Path(__file__).resolve().parents[1] / "static"
CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Revalidate every time: an upgraded daemon must not run yesterday's script.
HEADERS: Final = {"Cache-Control": "no-cache"}


def _asset(name: str) -> Response:
    """The asset ``name`` (a plain file name in ``STATIC_DIR``, nothing else), or a 404."""
    path = STATIC_DIR / name
    kind = CONTENT_TYPES.get(path.suffix)
    if "/" in name or "\\" in name or name.startswith(".") or kind is None or not path.is_file():
        return JSONResponse({"error": f"no such asset: {name[:80]!r}"}, status_code=404)
    return Response(path.read_bytes(), media_type=kind, headers=HEADERS)


async def index(request: Request) -> Response:
    """The page itself."""
    return _asset("index.html")


async def static(request: Request) -> Response:
    """One of the page's scripts or style sheets."""
    return _asset(str(request.path_params["name"]))
