"""Secrets never stored (``memq.redact``): each corpus case, the markers, the look-alikes left
alone, the user's patterns, the off switch, and the log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from memq import env as memq_env
from memq.config import Settings
from memq.env import Sources, Variable
from memq.exceptions import SettingError
from memq.hooks import run
from memq.logs import RedactSecrets, configure_logging
from memq.redact import (
    BUILT_IN,
    KINDS,
    REDACTED_MARK,
    Redactor,
    marker,
    redact_payload,
    redact_text,
    redactor,
)
from memq.settings_file import as_text, parse_variables
from tests.helpers.secrets_corpus import load, lookalike_problems, secret_problems

SECRETS = load("secrets")
LOOKALIKES = load("lookalikes")
GITHUB_TOKEN = "ghp_" + "FAKE0fake1FAKE2fake3FAKE4fake5FAKE6f"


class TestCorpus:
    def test_the_corpora_are_big_enough_and_name_their_kinds(self) -> None:
        """At least 40 cases each; every expected kind is one the rules name."""
        assert len(SECRETS) >= 40
        assert len(LOOKALIKES) >= 40
        assert {kind for case in SECRETS for kind in case["kinds"]} <= set(KINDS)
        assert len({case["id"] for case in SECRETS + LOOKALIKES}) == len(SECRETS + LOOKALIKES)

    @pytest.mark.parametrize("case", SECRETS, ids=lambda case: case["id"])
    def test_every_secret_is_replaced_by_its_kind(self, case: dict[str, Any]) -> None:
        """Each secret is gone, the markers name the expected kinds, the text around the
        secret stays, and redacting again changes nothing."""
        assert secret_problems(case, BUILT_IN) == []

    @pytest.mark.parametrize("case", LOOKALIKES, ids=lambda case: case["id"])
    def test_no_lookalike_is_touched(self, case: dict[str, Any]) -> None:
        """Digests, commit ids, UUIDs, base64 images, lockfile hashes, code about secrets:
        left exactly as they were."""
        assert lookalike_problems(case, BUILT_IN) == []

    @pytest.mark.parametrize("case", SECRETS, ids=lambda case: case["id"])
    def test_the_screen_of_the_raw_body_lets_every_secret_through(
        self, case: dict[str, Any]
    ) -> None:
        """The daemon's cheap screen of the JSON bytes never skips a body with a secret."""
        raw = json.dumps(case["payload"]).encode()
        assert BUILT_IN.may_hold_secret(raw)
        assert BUILT_IN.may_hold_secret(json.dumps(case["payload"]).replace("/", "\\/").encode())


class TestMarkers:
    def test_a_marker_names_the_kind_never_the_value(self) -> None:
        text, count = redact_text(f"git push https://{GITHUB_TOKEN}@github.com/a/b.git")
        assert (text, count) == ("git push https://[redacted:github-token]@github.com/a/b.git", 1)
        assert marker("jwt") == "[redacted:jwt]"

    def test_counts_every_secret_in_a_payload_keys_too(self) -> None:
        payload = {
            "tool_input": {"command": f"export GITHUB_TOKEN={GITHUB_TOKEN}"},
            "list": ["postgres://u:p@h/db", 3, None],
            GITHUB_TOKEN: True,
        }
        redacted, count = redact_payload(payload)
        assert count == 3
        assert GITHUB_TOKEN not in json.dumps(redacted)
        assert redacted["list"] == ["postgres://u:[redacted:url-password]@h/db", 3, None]

    def test_a_payload_without_secrets_is_the_same_object(self) -> None:
        payload = {"prompt": "fix the retry policy", "n": [1, 2]}
        assert redact_payload(payload) == (payload, 0)
        assert redact_payload(payload)[0] is payload

    def test_a_private_key_cut_short_is_hidden_to_its_end(self) -> None:
        """Fail closed: a key block without its END line goes whole."""
        text, _ = redact_text("key:\n-----BEGIN RSA PRIVATE KEY-----\n" + "QUJD" * 40)
        assert text == "key:\n[redacted:private-key]"

    def test_a_line_naming_the_header_only_is_left(self) -> None:
        line = 'if text.startswith("-----BEGIN RSA PRIVATE KEY-----"):\n    return parse(text)'
        assert redact_text(line) == (line, 0)

    def test_a_url_password_of_any_length_goes_a_reference_stays(self) -> None:
        assert (
            redact_text("redis://:p@cache:6379")[0] == "redis://:[redacted:url-password]@cache:6379"
        )
        assert redact_text("postgres://app:${DB_PASSWORD}@db/app")[1] == 0

    def test_lowering_that_changes_the_length_still_finds_names(self) -> None:
        """'İ' lowers to two characters: the places found in the lowered text would be off,
        so the text is searched as it is."""
        text, count = redact_text("İİİ note DB_PASSWORD=hunter22 İ")
        assert (text, count) == ("İİİ note DB_PASSWORD=[redacted:password] İ", 1)

    def test_code_that_names_secrets_is_not_a_secret(self) -> None:
        code = (
            "token = self.token\npassword: str = field(repr=False)\nAPI_KEY: Final = 'X'\n"
            "client = Client(api_key=api_key)\nheaders = {'Authorization': f'Bearer {token}'}\n"
        )
        assert redact_text(code) == (code, 0)


class TestUserPatterns:
    def test_a_match_becomes_a_custom_marker(self) -> None:
        redacting = Redactor([r"ACME-[0-9]{6}"])
        assert redacting.redact_text("ticket ACME-123456 and ACME-654321") == (
            "ticket [redacted:custom] and [redacted:custom]",
            2,
        )

    def test_the_secret_group_alone_is_replaced(self) -> None:
        redacting = Redactor([r"employee_id=(?P<secret>\d+)"])
        assert redacting.redact_text("employee_id=4242 ok")[0] == "employee_id=[redacted:custom] ok"

    def test_the_built_in_rules_still_apply(self) -> None:
        redacting = Redactor([r"ACME-[0-9]{6}"])
        assert redacting.redact_text(f"ACME-000001 {GITHUB_TOKEN}")[1] == 2
        assert redacting.may_hold_secret(b'{"prompt": "plain words"}')

    @pytest.mark.parametrize(
        ("pattern", "says"),
        [("(unclosed", "is not a regular expression"), ("x*", "matches empty text")],
    )
    def test_a_bad_pattern_is_a_setting_error_naming_it(self, pattern: str, says: str) -> None:
        env = {Variable.REDACT_PATTERNS: f"ACME-[0-9]+\n{pattern}"}
        with pytest.raises(SettingError) as caught:
            memq_env.redact_patterns(env)
        message = str(caught.value)
        assert message.startswith("MEMQ_REDACT_PATTERNS=")
        assert "(number 2)" in message
        assert repr(pattern) in message
        assert says in message
        with pytest.raises(SettingError):
            Settings.from_env(env)

    def test_patterns_come_one_a_line_from_the_variable(self) -> None:
        env = {Variable.REDACT_PATTERNS: "ACME-[0-9]{3,6}\n\n  (?i)internal-[a-z]+  \n"}
        assert memq_env.redact_patterns(env) == ("ACME-[0-9]{3,6}", "(?i)internal-[a-z]+")
        assert Settings.from_env(env).redact_patterns == ("ACME-[0-9]{3,6}", "(?i)internal-[a-z]+")

    def test_patterns_come_as_a_list_from_the_settings_file(self, tmp_path: Path) -> None:
        """A list in settings.toml, commas inside a pattern kept; a bad one names the key and
        the file."""
        path = str(tmp_path / "settings.toml")
        parsed = parse_variables(b'redact_patterns = ["ACME-[0-9]{3,6}", "x-[a-z]+"]\n', path)
        env = Sources({}, path, parsed.values)
        assert Settings.from_env(env).redact_patterns == ("ACME-[0-9]{3,6}", "x-[a-z]+")
        bad = Sources({}, path, parse_variables(b'redact_patterns = ["("]\n', path).values)
        with pytest.raises(SettingError, match=r"^redact_patterns = .*settings\.toml\)$"):
            memq_env.redact_patterns(bad)

    def test_a_pattern_may_hold_a_comma_not_a_line_break(self) -> None:
        assert as_text("redact_patterns", ["ACME-[0-9]{3,6}", "b"]) == "ACME-[0-9]{3,6}\nb"
        with pytest.raises(SettingError, match="line break"):
            as_text("redact_patterns", ["a\nb"])
        with pytest.raises(SettingError, match="comma"):
            as_text("skip_tools", ["a,b"])


class TestOffSwitch:
    @pytest.mark.parametrize(
        ("value", "on"),
        [(None, True), ("on", True), ("1", True), ("off", False), ("false", False), ("0", False)],
    )
    def test_on_unless_turned_off(self, value: str | None, on: bool) -> None:
        env = {} if value is None else {Variable.REDACT: value}
        assert memq_env.redact(env) is on
        assert Settings.from_env(env).redact is on

    def test_a_value_that_is_neither_is_an_error(self) -> None:
        with pytest.raises(SettingError, match="MEMQ_REDACT='maybe' is not on or off"):
            memq_env.redact({Variable.REDACT: "maybe"})

    def test_off_means_no_redactor(self) -> None:
        assert redactor(False, ["ACME"]) is None
        assert redactor(True) is BUILT_IN
        custom = redactor(True, ["ACME-[0-9]+"])
        assert custom is not None
        assert custom.patterns == ("ACME-[0-9]+",)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
class TestLogLines:
    def test_the_log_file_never_holds_a_secret(self, tmp_path: Path) -> None:
        """A value, an error's text and a traceback: each redacted before it is written; the
        stdlib's loggers (uvicorn's) too."""
        log_file = tmp_path / "logs" / "memq.log"
        configure_logging(log_file=log_file, console=False, level="info")
        log = structlog.get_logger("memq.test")
        log.info(
            "spool.rejected", reason=f"cannot parse {GITHUB_TOKEN}", extra={"k": [GITHUB_TOKEN]}
        )
        try:
            raise ValueError(f"bad url postgres://app:hunter22@db/app {GITHUB_TOKEN}")
        except ValueError:
            log.exception("processor.crashed")
        logging.getLogger("uvicorn.error").error("from uvicorn %s", GITHUB_TOKEN)
        text = log_file.read_text()
        assert GITHUB_TOKEN not in text
        assert "hunter22" not in text
        assert text.count("[redacted:github-token]") == 4
        assert [json.loads(line)["event"] for line in text.splitlines()] == [
            "spool.rejected",
            "processor.crashed",
            f"from uvicorn {marker('github-token')}",
        ]

    def test_off_leaves_log_lines_as_they_are(self, tmp_path: Path) -> None:
        log_file = tmp_path / "memq.log"
        configure_logging(log_file=log_file, console=False, level="info", redactor=None)
        structlog.get_logger("memq.test").info("x", value=GITHUB_TOKEN)
        assert GITHUB_TOKEN in log_file.read_text()

    def test_the_processor_keeps_other_values(self) -> None:
        event = {"event": "x", "n": 3, "token": GITHUB_TOKEN}
        assert RedactSecrets(BUILT_IN)(None, "info", event) == {
            "event": "x",
            "n": 3,
            "token": "[redacted:github-token]",
        }


class TestHookLog:
    def test_a_hook_log_line_holds_no_secret(self, tmp_path: Path) -> None:
        """An error's text that quotes the event is redacted before hook.log gets it, and
        the line stays JSON."""
        run.log_problem(str(tmp_path), "hook.failed", error=f"bad body: token {GITHUB_TOKEN}")
        (line,) = (tmp_path / "logs" / "hook.log").read_text().splitlines()
        assert json.loads(line)["error"] == "bad body: token [redacted:github-token]"


class TestMark:
    def test_the_fingerprint_names_the_rules(self) -> None:
        assert Redactor().fingerprint == BUILT_IN.fingerprint
        assert Redactor(["ACME-[0-9]+"]).fingerprint != BUILT_IN.fingerprint
        assert Redactor(["a+"]).fingerprint != Redactor(["b+"]).fingerprint

    def test_applied_to_only_its_own_mark(self) -> None:
        assert BUILT_IN.applied_to({REDACTED_MARK: BUILT_IN.fingerprint})
        assert not BUILT_IN.applied_to({REDACTED_MARK: Redactor(["x+"]).fingerprint})
        assert not BUILT_IN.applied_to({})
        assert not BUILT_IN.applied_to([REDACTED_MARK])
