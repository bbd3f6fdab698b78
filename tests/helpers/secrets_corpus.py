"""The secrets corpus (``tests/fixtures/secrets``) and what redacting each case must do.

``secrets.jsonl``: hook payloads holding fake but well-formed secrets, each case with the
kinds of marker it must get (``kinds``), the secret texts that must be gone (``secrets``) and
the texts around them that must stay (``keep``). ``lookalikes.jsonl``: payloads full of
things that look random but are no secret (digests, commit ids, UUIDs, base64 images,
lockfile hashes), which must come out unchanged. Shared by the tests and
``scripts/redaction_report.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from memq.redact import Redactor

CORPUS = Path(__file__).parents[1] / "fixtures" / "secrets"
_MARKER = re.compile(r"\[redacted:([a-z0-9-]+)\]")


def load(name: str) -> list[dict[str, Any]]:
    """The cases of ``secrets`` or ``lookalikes``."""
    lines = (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def strings(value: Any) -> list[str]:
    """Every string in a payload, keys too."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [*strings(key), *strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def secret_problems(case: dict[str, Any], redactor: Redactor) -> list[str]:
    """What redacting a secrets case did wrong (empty: all of it right)."""
    redacted, count = redactor.redact_value(case["payload"])
    text = "\n".join(strings(redacted))
    problems = [f"secret kept: {secret!r}" for secret in case["secrets"] if secret in text]
    found = set(_MARKER.findall(text))
    if found != set(case["kinds"]):
        problems.append(f"kinds {sorted(found)}, expected {case['kinds']}")
    problems += [f"lost: {kept!r}" for kept in case["keep"] if kept not in text]
    if count < len(case["kinds"]):
        problems.append(f"count {count} < {len(case['kinds'])}")
    again, recount = redactor.redact_value(redacted)
    if recount or again != redacted:
        problems.append("redacting it again changed it")
    return problems


def lookalike_problems(case: dict[str, Any], redactor: Redactor) -> list[str]:
    """What redacting a look-alike case did wrong (empty: left it as it was)."""
    redacted, count = redactor.redact_value(case["payload"])
    if not count and redacted == case["payload"]:
        return []
    text = "\n".join(strings(redacted))
    lines = [line for line in text.splitlines() if "[redacted:" in line]
    return [f"redacted {count}: " + ", ".join(sorted(set(_MARKER.findall(text)))), *lines[:3]]
