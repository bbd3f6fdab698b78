"""Turning what a person types into PostgreSQL tsquery pieces (memq.memory.pg_search, no
server): the words syntax as SQLite's, FTS5's syntax where tsquery has an equivalent."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memq.exceptions import InvalidQueryError
from memq.memory.pg_search import (
    COLUMN_WEIGHTS,
    tsquery_expressions,
    tsquery_text,
    word_alternatives,
)
from memq.memory.search import MAX_WORDS, QuerySyntax, match_expressions

FTS = QuerySyntax.FTS


def texts(query: str, syntax: QuerySyntax = QuerySyntax.WORDS) -> list[str]:
    return [tsquery_text(pieces) for pieces in tsquery_expressions(query, syntax)]


def fts(query: str) -> str:
    (text,) = texts(query, FTS)
    return text


class TestWords:
    def test_every_word_then_any_word(self) -> None:
        assert texts("where did we change the retry logic?") == [
            "'change' & 'retry' & 'logic'",
            "'change' | 'retry' | 'logic'",
        ]

    def test_one_word_is_one_expression(self) -> None:
        assert texts("backoff") == ["'backoff'"]

    def test_camel_case_is_also_its_parts(self) -> None:
        assert texts("retryWithBackoff") == ["('retryWithBackoff' | 'retry With Backoff')"]
        assert word_alternatives("HTTPClient") == ["HTTPClient", "HTTP Client"]

    def test_snake_case_is_joined_in_the_looser_expression(self) -> None:
        assert texts("http_client") == ["'http_client'", "('http_client' | 'httpclient')"]
        assert texts("retry-policy") == ["'retry-policy'", "('retry-policy' | 'retrypolicy')"]

    def test_paths_stay_whole_terms(self) -> None:
        """memq_search_text (on the server) makes a path the phrase of its words."""
        assert texts("src/net/retry_policy.py") == ["'src/net/retry_policy.py'"]

    def test_quotes_and_dashes_are_only_punctuation(self) -> None:
        """As on SQLite, the words syntax has no phrases, exclusion or prefix."""
        assert texts('"retry policy" -flaky retr*') == [
            "'retry' & 'policy' & 'flaky' & 'retr'",
            "'retry' | 'policy' | 'flaky' | 'retr'",
        ]

    def test_same_number_of_expressions_as_sqlite(self) -> None:
        for query in ("a b", "retry_policy", "one", "x_y z", "HTTPClient retry"):
            assert len(texts(query)) == len(match_expressions(query)), query

    @pytest.mark.parametrize("query", ["", "   ", "\n"])
    def test_an_empty_query_is_refused(self, query: str) -> None:
        with pytest.raises(InvalidQueryError, match="empty"):
            tsquery_expressions(query)

    def test_a_query_without_words_is_refused(self) -> None:
        with pytest.raises(InvalidQueryError, match="no words"):
            tsquery_expressions("?! -- ...")

    def test_at_most_max_words(self) -> None:
        query = " ".join(f"word{n}" for n in range(MAX_WORDS + 5))
        assert texts(query)[0].count("&") == MAX_WORDS - 1


class TestFts:
    @pytest.mark.parametrize(
        ("query", "tsquery"),
        [
            ("retry", "'retry'"),
            ('"retry policy"', "'retry policy'"),
            ('"say ""hi"""', "'say hi'"),  # FTS5's doubled quote; punctuation separates
            ("retry_policy", "'retry policy'"),  # a bareword of two tokens: a phrase
            ("retry policy", "('retry' & 'policy')"),  # side by side: AND
            ("retry AND policy", "('retry' & 'policy')"),
            ("retry OR policy", "('retry' | 'policy')"),
            ("retry NOT flaky", "('retry' & !'flaky')"),
            ('"a" + "b c"', "'a b c'"),
            ("retr*", "'retr':*"),
            ('"retry pol"*', "('retry' <-> 'pol':*)"),  # a prefix of the last word only
            ('"a"* + "b"', "('a':* <-> 'b')"),
            ("title: backoff", "'backoff':A"),
            ("body: backoff*", "'backoff':*C"),
            ("{title body}: (a OR b)", "('a':AC | 'b':AC)"),
            ("-title: x", "'x':BCD"),
            ("{detail facts files command prompt}: x", "'x':B"),
            ("{output parts}: x", "'x':D"),
            ('"title": x', "'x':A"),  # a quoted column name
            ("TITLE: x", "'x':A"),  # column names ignore case
            ("NEAR retry", "('NEAR' & 'retry')"),  # NEAR without ( is a word
            ('"" retry', "(' ' & 'retry')"),  # an empty phrase: a term without lexemes
            ('"a\x00b"', "'a b'"),  # control characters separate words
        ],
    )
    def test_maps(self, query: str, tsquery: str) -> None:
        assert fts(query) == tsquery

    @pytest.mark.parametrize(
        ("query", "tsquery"),
        [
            # FTS5's precedence: OR < AND < NOT < phrases side by side
            ("a NOT b c", "('a' & !('b' & 'c'))"),
            ("a NOT b AND c", "(('a' & !'b') & 'c')"),
            ("a OR b c", "('a' | ('b' & 'c'))"),
            ("a OR b AND c", "('a' | ('b' & 'c'))"),
            ("a NOT b NOT c", "(('a' & !'b') & !'c')"),
            ("(a OR b) NOT c", "(('a' | 'b') & !'c')"),
            ("title: a b", "('a':A & 'b')"),  # a filter takes the phrase after it
            ("title: (a NOT b)", "('a':A & !'b':A)"),
        ],
    )
    def test_precedence_as_fts5(self, query: str, tsquery: str) -> None:
        assert fts(query) == tsquery

    @pytest.mark.parametrize(
        ("query", "says"),
        [
            ("NEAR(a b, 3)", "NEAR.*no equivalent on PostgreSQL"),
            ("^a", r"\^.*no equivalent on PostgreSQL"),
            ("detail: x", "column filter {detail} has no equivalent on PostgreSQL"),
            ("{title detail}: x", "command, facts, files, prompt"),
            ("-output: x", "parts"),
            ("title: (body: x)", "no column"),
            ("nosuch: x", "no such column: nosuch"),
        ],
    )
    def test_refuses_what_has_no_equivalent(self, query: str, says: str) -> None:
        with pytest.raises(InvalidQueryError, match=says):
            tsquery_expressions(query, FTS)

    @pytest.mark.parametrize(
        "query",
        ["a AND", "NOT a", "a AND NOT b", "(a) b", "(a", "a)", "a.b", '"open', "*", "a +", "-x"],
    )
    def test_syntax_errors_as_fts5(self, query: str) -> None:
        """Each is an FTS5 syntax error on SQLite too."""
        with pytest.raises(InvalidQueryError, match="invalid search query"):
            tsquery_expressions(query, FTS)

    def test_every_column_has_a_weight(self) -> None:
        assert set(COLUMN_WEIGHTS.values()) == {"A", "B", "C", "D"}


_TERM = re.compile(r"'[^']*'")


@given(st.text(max_size=60))
def test_pieces_always_make_balanced_tsquery_text(query: str) -> None:
    """Whatever the input: a valid query's pieces alternate operators and non-empty terms
    (the statement quotes the terms after memq_search_text), parentheses balance, and no
    term holds a quote (memq_search_text would drop one; the builder never needs to)."""
    for syntax in QuerySyntax:
        try:
            expressions = tsquery_expressions(query, syntax)
        except InvalidQueryError:
            continue
        for pieces in expressions:
            assert len(pieces) % 2 == 1
            terms = pieces[1::2]
            assert all(terms), pieces
            assert not any("\x00" in term for term in terms), pieces  # PostgreSQL refuses NUL
            operators = "".join(pieces[0::2])
            assert operators.count("(") == operators.count(")"), pieces
            assert not re.search(r"[^ ()&|!<>:*ABCD-]", operators), pieces
            if syntax is FTS:
                assert not any("'" in term for term in terms), pieces
