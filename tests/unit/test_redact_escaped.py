"""The daemon's screen of a body's bytes (``Redactor.may_hold_secret``) does not let a
secret through because JSON wrote it with escapes: ``\\u0041KIA...`` is ``AKIA...`` once
parsed, and a client's encoder may write any character so (issue 17: nothing secret leaves
the laptop, whatever client posted it)."""

from __future__ import annotations

import json

from memq.redact import BUILT_IN

AWS_KEY = "AKIAQ7XEXAMPLEZ2ZAB3"


def escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_an_escaped_secret_passes_the_screen_and_is_redacted() -> None:
    raw = json.dumps({"prompt": f"deploy with {AWS_KEY}"}).replace(AWS_KEY, escaped(AWS_KEY))
    assert "AKIA" not in raw
    assert BUILT_IN.may_hold_secret(raw.encode())
    redacted, found = BUILT_IN.redact_value(json.loads(raw))
    assert found == 1
    assert AWS_KEY not in json.dumps(redacted)


def test_a_body_with_no_trigger_and_no_escape_is_still_screened_out() -> None:
    assert not BUILT_IN.may_hold_secret(json.dumps({"prompt": "deploy the app"}).encode())
    # An escaped character that is no trigger's still costs the parse: the screen cannot
    # tell which character it is.
    assert BUILT_IN.may_hold_secret(json.dumps({"prompt": "déploy"}).encode())
