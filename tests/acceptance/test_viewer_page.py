"""The viewer's page and assets: served without credentials (they hold no data), with the
page headers, and nothing else from the package directory."""

from __future__ import annotations

import httpx

from memq.worker.page_headers import CONTENT_SECURITY_POLICY
from tests.helpers.daemon import Daemon


class TestViewerPage:
    def test_page_and_assets_are_served_with_the_page_headers(self, daemon: Daemon) -> None:
        with httpx.Client(base_url=daemon.url, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert '<script type="module" src="/static/app.js">' in page.text
            assert "<style" not in page.text
            script = client.get("/static/app.js")
            assert script.status_code == 200
            assert script.headers["content-type"].startswith("text/javascript")
            assert ".innerHTML" not in script.text  # untrusted text goes in as text only
            style = client.get("/static/app.css")
            assert style.headers["content-type"].startswith("text/css")

    def test_nothing_but_the_assets(self, daemon: Daemon) -> None:
        with httpx.Client(base_url=daemon.url, timeout=10) as client:
            for path in (
                "/static/nope.js",
                "/static/../security.py",
                "/static/..%2F..%2Fsecurity.py",
                "/static/.hidden.js",
                "/static/",
            ):
                # (httpx itself folds a literal "..": that path then asks for the token.)
                assert client.get(path).status_code in {401, 404}, path
            # Outside / and /static/, the token is still asked for.
            assert client.get("/index.html").status_code == 401

    def test_a_foreign_host_is_refused_even_for_the_page(self, daemon: Daemon) -> None:
        with httpx.Client(base_url=daemon.url, timeout=10) as client:
            answer = client.get("/", headers={"Host": f"evil.example:{daemon.port}"})
            assert answer.status_code == 403
