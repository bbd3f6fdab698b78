"""MEMQ_DATABASE_URL: checked, and never shown with its password (no server needed)."""

from __future__ import annotations

import pytest

from memq.config import SETTINGS_BY_KEY, Settings, settings_report
from memq.exceptions import SettingError
from memq.storage.postgres.url import shown_url, url_problem


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://memq@db:5432/memq", "postgresql://memq@db:5432/memq"),
        ("postgresql://memq:s3cret@db/memq", "postgresql://memq:***@db/memq"),
        ("postgres://:s3cret@db/memq", "postgres://:***@db/memq"),
        (
            "postgresql://db/memq?password=s3cret&sslmode=require",
            "postgresql://db/memq?password=***&sslmode=require",
        ),
        ("", ""),
    ],
)
def test_a_password_is_never_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.mark.parametrize("url", ["mysql://u@h/db", "db.example.com", "postgresql://h:port/db"])
def test_what_is_not_a_postgresql_url_is_refused(url: str) -> None:
    assert url_problem(url) is not None
    with pytest.raises(SettingError, match="MEMQ_DATABASE_URL"):
        SETTINGS_BY_KEY["database_url"].parse({"MEMQ_DATABASE_URL": url})


def test_the_setting_is_read_shown_and_reported_without_the_password() -> None:
    url = "postgresql://memq:s3cret@db/memq"
    assert Settings.from_env({"MEMQ_DATABASE_URL": url}).database_url == url
    assert Settings.from_env({}).database_url == ""
    report = settings_report({"MEMQ_DATABASE_URL": url})["database_url"]
    assert report["value"] == "postgresql://memq:***@db/memq"
    bad = settings_report({"MEMQ_DATABASE_URL": "mysql://memq:s3cret@db/memq"})["database_url"]
    assert "s3cret" not in str(bad)
    assert "error" in bad
