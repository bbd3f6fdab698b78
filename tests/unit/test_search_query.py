"""Turning what a person types into FTS5 expressions (memq.memory.search, no daemon)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memq.exceptions import InvalidQueryError
from memq.memory.search import (
    MAX_WORDS,
    QuerySyntax,
    identifier_parts,
    match_expressions,
    parse_words,
    word_term,
)
from memq.storage import schema


@pytest.fixture(scope="module")
def index() -> Iterator[sqlite3.Connection]:
    """The migrated schema in memory, with one record of each type in the index."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.migrate(conn)
    conn.execute(
        "INSERT INTO sessions (key, assistant, external_id, started_at, updated_at, created_at)"
        " VALUES ('claude-code:s', 'claude-code', 's', 0, 0, 0)"
    )
    conn.execute(
        "INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative,"
        " facts, concepts, files_read, files_modified, excerpt, created_at) VALUES"
        " (1, 'claude-code:s', 'change', 'Edited src/retry_policy.py', '',"
        " 'retryWithBackoff now waits', '[]', '[]', '[]', '[\"src/retry_policy.py\"]', '', 0)"
    )
    conn.execute(
        "INSERT INTO prompts (message_id, session_key, number, text, created_at)"
        " VALUES (2, 'claude-code:s', 1, 'where did we change the retry logic?', 0)"
    )
    yield conn
    conn.close()


def matching(conn: sqlite3.Connection, expression: str) -> list[int]:
    """Message ids of the records an expression matches."""
    rows = conn.execute(
        "SELECT rowid >> 2 FROM memory_fts WHERE memory_fts MATCH ? ORDER BY rowid",
        (expression,),
    )
    return [row[0] for row in rows]


class TestParseWords:
    def test_punctuation_around_words_is_dropped(self) -> None:
        """Question marks, quotes and brackets around a word are not part of it."""
        assert parse_words('"retry" (backoff), logic?!') == ["retry", "backoff", "logic"]

    def test_punctuation_inside_a_word_stays(self) -> None:
        """Paths and identifiers keep their inner punctuation: they become phrases."""
        assert parse_words("src/retry_policy.py retryWithBackoff()") == [
            "src/retry_policy.py",
            "retryWithBackoff",
        ]

    def test_common_words_are_left_out(self) -> None:
        """Function words would make AND find nothing and add nothing to ranking."""
        assert parse_words("where did we change the retry logic?") == ["change", "retry", "logic"]

    def test_only_common_words_are_kept(self) -> None:
        """A query of nothing but common words still searches for them."""
        assert parse_words("What is it?") == ["What", "is", "it"]

    def test_control_characters_separate_words(self) -> None:
        """A NUL or other control character never reaches FTS5 inside a phrase."""
        assert parse_words("w\x00x\x01y\x7fz") == ["w", "x", "y", "z"]

    def test_repeats_and_wordless_pieces_are_dropped(self) -> None:
        """A word twice (any case) counts once; pieces without letters or digits vanish."""
        assert parse_words("Retry retry RETRY -- ... ✓ 42") == ["Retry", "42"]

    def test_at_most_max_words(self) -> None:
        """A pasted paragraph is cut to the first MAX_WORDS distinct words."""
        words = parse_words(" ".join(f"w{i}" for i in range(100)))
        assert words == [f"w{i}" for i in range(MAX_WORDS)]


class TestIdentifierParts:
    @pytest.mark.parametrize(
        "word",
        ["retry_policy", "retryPolicy", "RetryPolicy", "retry-policy", "retry.policy",
         "RETRY_POLICY", "__retry_policy__"],
    )  # fmt: skip
    def test_every_spelling_has_the_same_parts(self, word: str) -> None:
        """snake, camel, Pascal, kebab, dotted and constant case: the same two words."""
        assert [part.casefold() for part in identifier_parts(word)] == ["retry", "policy"]

    def test_paths_are_their_directories_and_file_name(self) -> None:
        """A path is its components, its file name split at the dot."""
        assert identifier_parts("src/net/retry.py") == ["src", "net", "retry", "py"]
        assert identifier_parts("web/src/pages/CartPage.tsx") == [
            *("web", "src", "pages", "Cart", "Page", "tsx"),
        ]

    def test_acronyms_and_digits(self) -> None:
        """An acronym stays whole before the next word; digits stay with their letters."""
        assert identifier_parts("parseHTTPResponse") == ["parse", "HTTP", "Response"]
        assert identifier_parts("base64Encode") == ["base64", "Encode"]
        assert identifier_parts("utf8") == ["utf8"]

    def test_a_plain_word_is_itself(self) -> None:
        """Prose words and non-ASCII letters are one part each."""
        assert identifier_parts("retries") == ["retries"]
        assert identifier_parts("café") == ["café"]
        assert identifier_parts("--") == []


class TestWordTerm:
    def test_a_plain_word_is_one_quoted_phrase(self) -> None:
        """Quoting makes FTS5 operators and syntax characters plain text."""
        assert word_term("NEAR") == '"NEAR"'
        assert word_term('say"hi') == '"say""hi"'

    def test_camel_case_also_searches_its_words(self) -> None:
        """retryWithBackoff is one token, or the phrase of its words."""
        assert word_term("retryWithBackoff") == '("retryWithBackoff" OR "retry With Backoff")'
        assert word_term("HTTPServer") == '("HTTPServer" OR "HTTP Server")'

    def test_snake_and_kebab_case_are_the_phrase_of_their_parts(self) -> None:
        """retry_with_backoff is the tokens retry, with, backoff in a row: the tokenizer
        splits it, and the index keeps the same parts of retryWithBackoff (0011)."""
        assert word_term("retry_with_backoff") == '"retry_with_backoff"'
        assert word_term("no-verify") == '"no-verify"'
        assert word_term("src/a.py") == '"src/a.py"'

    def test_joined_adds_the_one_word_a_snake_case_word_makes(self) -> None:
        """For the looser expression: http_client may be the token of HTTPClient."""
        assert word_term("http_client", joined=True) == '("http_client" OR "httpclient")'
        assert word_term("no-verify", joined=True) == '("no-verify" OR "noverify")'
        assert word_term("src/a.py", joined=True) == '"src/a.py"'
        assert word_term("retry", joined=True) == '"retry"'

    def test_a_camel_case_path_also_searches_its_parts(self) -> None:
        """CartPage.tsx is its tokens (cartpage, tsx) or the parts the index keeps."""
        assert word_term("CartPage.tsx") == '("CartPage.tsx" OR "Cart Page tsx")'


class TestMatchExpressions:
    def test_every_word_then_any_word(self) -> None:
        """Words mode tries AND first, then OR."""
        assert match_expressions("retry logic") == [
            '"retry" AND "logic"',
            '"retry" OR "logic"',
        ]
        assert match_expressions("retry") == ['"retry"']

    def test_joined_snake_case_is_a_looser_step(self) -> None:
        """Every word as written first, then with snake_case joined, then any word."""
        assert match_expressions("http_client timeout") == [
            '"http_client" AND "timeout"',
            '("http_client" OR "httpclient") AND "timeout"',
            '("http_client" OR "httpclient") OR "timeout"',
        ]
        assert match_expressions("http_client") == [
            '"http_client"',
            '("http_client" OR "httpclient")',
        ]

    def test_fts_syntax_is_passed_through(self) -> None:
        """Power users get FTS5 as written."""
        assert match_expressions('title: "a b" NOT c', QuerySyntax.FTS) == ['title: "a b" NOT c']

    @pytest.mark.parametrize("syntax", list(QuerySyntax))
    @pytest.mark.parametrize("query", ["", " ", "\n\t "])
    def test_an_empty_query_is_refused(self, query: str, syntax: QuerySyntax) -> None:
        """Nothing to look for is InvalidQueryError in either syntax."""
        with pytest.raises(InvalidQueryError, match="empty"):
            match_expressions(query, syntax)

    def test_a_query_without_words_is_refused(self) -> None:
        """Only punctuation leaves no words."""
        with pytest.raises(InvalidQueryError, match="no words"):
            match_expressions("?! -- ()")


class TestAgainstTheIndex:
    def test_words_find_paths_identifiers_and_word_forms(self, index: sqlite3.Connection) -> None:
        """The expressions do what the tokenizer comments promise."""

        def find(query: str) -> list[int]:
            return matching(index, match_expressions(query)[0])

        assert find("src/retry_policy.py") == [1]
        assert find("retry_policy") == [1]
        assert find("policy") == [1]
        assert find("retryWithBackoff") == [1]
        assert find("retry_with_backoff") == [1]  # as the parts the index keeps (0011)
        assert find("backoff") == [1]  # the index keeps the parts of camelCase words (0011)
        assert find("with backoff") == [1]
        assert find("retry-with-backoff") == [1]
        assert find("changed") == [2]  # porter: changed, change
        assert find("retries logic") == [2]
        assert find("wait") == [1]

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(min_size=1, max_size=60))
    def test_words_mode_never_makes_a_syntax_error(self, text: str) -> None:
        """Whatever is typed, every expression runs (or the query is refused as wordless)."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            schema.migrate(conn)
            try:
                expressions = match_expressions(text)
            except InvalidQueryError:
                assert not parse_words(text)
                return
            for expression in expressions:
                matching(conn, expression)
        finally:
            conn.close()

    @pytest.mark.parametrize(
        "text",
        ['"', "'", "(", ")", "*", "^", ":", "-", "+", "{", "}", "NEAR(", "AND", "OR NOT",
         'a" OR "b', "title:", "x:y", "\x00", "a\x00b", "٣", "ǅungla", "straße", "ﬁle"],
    )  # fmt: skip
    def test_syntax_characters_and_odd_letters(self, index: sqlite3.Connection, text: str) -> None:
        """FTS5's own syntax and unusual Unicode are just text in words mode."""
        try:
            expressions = match_expressions(text)
        except InvalidQueryError:
            return
        for expression in expressions:
            matching(index, expression)
