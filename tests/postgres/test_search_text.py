"""memq_search_text after 0008 (its fast paths): the same text as 0001's function gave, on
every kind of text, since the generated search columns already hold what the old one made;
and much less time for a long text."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from memq.storage.postgres import schema
from tests.postgres.conftest import PgSchema

OLD = "old_search_text"
LONG = 245_000  # bytes: the text that held the writer's batch for 0.3 s


def old_function() -> str:
    """0001's memq_search_text, as ``OLD``."""
    text = (schema.MIGRATIONS_DIR / "0001_schema.sql").read_text(encoding="utf-8")
    found = re.search(r"CREATE FUNCTION memq_search_text\(.*?\);\n", text, re.DOTALL)
    assert found is not None
    return found.group(0).replace("memq_search_text", OLD, 1)


@pytest.fixture
async def migrated(pg_schema: PgSchema, pg_conn: Any) -> PgSchema:
    await schema.migrate(pg_conn)
    pg_schema.query(old_function())
    return pg_schema


def differing(pg: PgSchema, texts: list[str]) -> list[tuple[str, str, str]]:
    """The texts the two functions fold differently: (text, old, new)."""
    rows = pg.query(
        f"SELECT t, {OLD}(t), memq_search_text(t) FROM unnest(%s::text[]) AS t"
        f" WHERE {OLD}(t) IS DISTINCT FROM memq_search_text(t)",
        (texts,),
    )
    return [(str(t), str(old), str(new)) for t, old, new in rows]


def code_points() -> list[str]:
    """Every character up to U+05FF (ASCII, Latin-1, both Latin Extended blocks, IPA,
    combining marks, Greek, Cyrillic, ...), and samples beyond: CJK, Hangul, emoji, ..."""
    beyond = [0x1E00, 0x1EC7, 0x1F00, 0x2013, 0x2603, 0x3042, 0x4E2D, 0xAC00, 0xFB01, 0xFF21]
    return [chr(c) for c in [*range(1, 0x600), *beyond, 0x1F600, 0x1D400]]


def mixed(rng: random.Random, size: int) -> str:
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789",
        " \n\t.,;:_-/()[]{}'\"`~!@#$%^&*+=<>?|\\",
        "éèàçôûëïœæßÀÉÈÇØøĐđŁłĦħıĲǰȳɏ\u00d7\u00f7",
        "абвгдеёжзийклмнопрЖЯ",
        "中文字ひらがなカタカナ한국어",
        "😀🎉\u0301\u0308\u200d\x01\x7f",
    ]
    weights = rng.sample([40, 20, 10, 5, 3, 1], k=len(pools))
    return "".join(rng.choice(rng.choices(pools, weights=weights)[0]) for _ in range(size))


async def test_every_character_folds_as_before(migrated: PgSchema) -> None:
    """Each character alone, among ASCII letters (a Latin text), and beside a Cyrillic
    letter (a text of another script): each of the function's paths."""
    texts = [form for c in code_points() for form in (c, f"a{c}b", f"ж{c}", f"x.{c}é")]
    assert differing(migrated, texts) == []


async def test_mixed_texts_fold_as_before(migrated: PgSchema) -> None:
    rng = random.Random(20261204)
    texts = [mixed(rng, rng.choice([0, 1, 2, 5, 40, 300, 2_000])) for _ in range(600)]
    assert differing(migrated, texts) == []


def long_texts() -> dict[str, str]:
    rng = random.Random(7)

    def words(alphabet: str) -> str:
        out = " ".join(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 9)))
            for _ in range(LONG // 4)
        )
        return out.encode()[:LONG].decode(errors="ignore")

    return {
        "ascii": words("abcdefghijklmnopqrstuvwxyz_./:()0123"),
        # French-like: one letter in twenty accented.
        "latin": words("abcdefghijklmnopqrstuvwxyz" * 3 + "éèàçô"),
        "cyrillic": words("абвгдежзийклмнопрстуфхцчшщыэюя"),
        "cyrillic with accents": words("абвгдежзийклмнопрстуфхцчшщыэюяé"),
    }


async def test_long_texts_fold_as_before(migrated: PgSchema) -> None:
    """245 KB of each kind folds to the same text. How much faster: scripts/bench_pg_store.py,
    beside the old function in one run (a timed test would flake on a busy machine)."""
    for kind, text in long_texts().items():
        assert differing(migrated, [text]) == [], kind
