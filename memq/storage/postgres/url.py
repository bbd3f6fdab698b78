"""``MEMQ_DATABASE_URL``: checked, and shown without its password.

Standard library only: ``memq.config`` reads the setting for every command, and ``memq
status`` shows it, whether or not the PostgreSQL driver is installed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

SCHEMES: Final = ("postgresql", "postgres")
MASK: Final = "***"
# Query parameters libpq reads a secret from.
_SECRET_PARAMETERS: Final = frozenset({"password", "sslpassword"})


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as a database URL, or None when memq can use it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in SCHEMES:
        return "must start with postgresql:// (or postgres://)"
    return None


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and ``memq status``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # not a URL: it might be anything, a password too
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name in _SECRET_PARAMETERS for name, _ in pairs):
            query = urlencode(
                [(n, MASK if n in _SECRET_PARAMETERS else v) for n, v in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
