"""How well memq's redaction (``memq.redact``) does on the secrets corpus: the share of
secrets cases fully redacted (every secret gone, the right markers, the text around kept) and
the share of look-alike cases (digests, commit ids, UUIDs, base64 images, lockfile hashes)
wrongly touched. A line per failed case on stderr; one JSON object on stdout.

    .venv/bin/python scripts/redaction_report.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers

from memq.redact import Redactor
from tests.helpers.secrets_corpus import load, lookalike_problems, secret_problems


def main() -> int:
    """Print the detection and false-positive rates."""
    redactor = Redactor()
    redactor.warm()
    secrets, lookalikes = load("secrets"), load("lookalikes")
    started = time.perf_counter()
    missed = {case["id"]: secret_problems(case, redactor) for case in secrets}
    touched = {case["id"]: lookalike_problems(case, redactor) for case in lookalikes}
    elapsed = time.perf_counter() - started
    missed = {key: value for key, value in missed.items() if value}
    touched = {key: value for key, value in touched.items() if value}
    detected = len(secrets) - len(missed)
    kinds = sorted({kind for case in secrets for kind in case["kinds"]})
    for key, problems in {**missed, **touched}.items():
        print(f"FAILED {key}: " + "; ".join(problems), file=sys.stderr)
    detection = detected / len(secrets)
    false_positives = len(touched) / len(lookalikes)
    print(
        f"secrets: {detected}/{len(secrets)} cases redacted ({detection:.1%}), {len(kinds)} kinds",
        file=sys.stderr,
    )
    print(
        f"look-alikes: {len(touched)}/{len(lookalikes)} cases touched "
        f"({false_positives:.1%} false positives)",
        file=sys.stderr,
    )
    report = {
        "secrets_cases": len(secrets),
        "detection_rate": round(detection, 4),
        "lookalike_cases": len(lookalikes),
        "false_positive_rate": round(false_positives, 4),
        "kinds": kinds,
        "missed": sorted(missed),
        "false_positives": sorted(touched),
        "seconds": round(elapsed, 4),
    }
    print(json.dumps(report))
    return 0 if not missed and not touched else 1


if __name__ == "__main__":
    raise SystemExit(main())
