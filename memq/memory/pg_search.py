"""Memory search on PostgreSQL: queries as tsquery text, and a read connection for them.

    reader = await PgMemoryReader.open(url)
    async with MemorySearch(reader, dialect=POSTGRES) as memory:
        hits = await memory.search("where did we change the retry logic?")

``MemorySearch`` runs the same steps on both backends (expressions tried in turn, the rank
window, the filters); this module gives PostgreSQL's expressions and connection, and
``queries/postgres/search.sql`` its statements. An expression is a list of *pieces*, which
the statement joins into ``to_tsquery('english', ...)`` text: even positions (0, 2, ...) are
tsquery operators and parentheses written here; odd positions are terms, which the statement
passes through ``memq_search_text`` (the function that made the indexed text: punctuation to
spaces, diacritics off) and quotes. A quoted term with several words is a phrase to
``to_tsquery`` (``'retry policy'``: retri <-> polici), so paths and snake_case match as on
SQLite, and stop words inside a phrase keep their distance (``retri <2> backoff``). Building
the query from terms, not ``websearch_to_tsquery`` of the whole text, keeps phrases and
negation (``memq_search_text`` turns ``"`` and ``-`` into spaces).

Words syntax: what ``parse_words`` makes of the text, each word with the identifier
alternatives ``word_term`` gives on SQLite (camelCase parts, snake_case joined), in the same
three expressions (every word, every word loosely, any word).

FTS syntax: FTS5's expression language where tsquery has its equivalent: phrases, ``+``,
``AND``/``OR``/``NOT``, implicit AND, parentheses, prefix ``*`` (on a phrase's last word) and
column filters whose columns make up whole weight classes (``title``: A, ``body``: C,
``{detail facts files command prompt}``: B, ``{output parts}``: D, and negated filters such as
``-title``). ``NEAR``, ``^`` and filters on part of a weight class are refused with
``InvalidQueryError``. Stop words (the english configuration's) are dropped as on any
PostgreSQL text search: a query of stop words alone finds nothing.

Scores: ``ts_rank`` with weights {D 0.1, C 0.2, B 0.4, A 1.0}, as rank / (rank + 1), times
40: on the recall corpus a ``min_score`` of 8 (``recall_min_score``'s default) keeps about the
share of hits it keeps on SQLite (see queries/postgres/search.sql). Still, higher is better
and scores compare within one search only; ts_rank has no word rarity (BM25's IDF), so a
question answered only by its rarer words ranks less well than on SQLite.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Self

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from memq.exceptions import InvalidQueryError
from memq.memory.reader import MemoryReader
from memq.memory.search import (
    _CAMEL_BOUNDARY,
    _SNAKE_OR_KEBAB,
    QuerySyntax,
    identifier_parts,
    parse_words,
)
from memq.storage.postgres.connection import ConnectOptions, open_pool, storage_errors
from memq.storage.postgres.statements import pg_form
from memq.storage.postgres.url import shown_url

Pieces = list[str]
"""A tsquery as operators (even positions) and terms (odd positions); see the module doc."""

# The weight class of each column of SQLite's memory_fts (migration 0001_schema.sql of
# PostgreSQL puts each field at one of four weights).
COLUMN_WEIGHTS: Final = {
    "title": "A",
    "detail": "B",
    "body": "C",
    "facts": "B",
    "files": "B",
    "command": "B",
    "output": "D",
    "prompt": "B",
    "parts": "D",
}
_ALL_WEIGHTS: Final = frozenset(COLUMN_WEIGHTS.values())
# What memq_search_text turns into spaces (ASCII punctuation), white space and control
# characters (blanks to the parser; a NUL cannot be sent): the word boundaries of a phrase.
_WORD_SEPARATORS: Final = re.compile(r"[\s\x00-\x1f\x7f!-/:-@\[-`{-~]+")


# -- words syntax ------------------------------------------------------------------------------


def word_alternatives(word: str, *, joined: bool = False) -> list[str]:
    """The texts one word of a words query is looked for as (any of them): the word, its
    camelCase parts as a phrase, and with ``joined`` a snake_case or kebab-case word's parts
    as one word. As ``memq.memory.search.word_term``, without FTS5's quoting."""
    alternatives = [word]
    if _CAMEL_BOUNDARY.search(word):
        alternatives.append(" ".join(identifier_parts(word)))
    if joined and _SNAKE_OR_KEBAB.match(word):
        alternatives.append("".join(identifier_parts(word)))
    return alternatives


def tsquery_expressions(query: str, syntax: QuerySyntax = QuerySyntax.WORDS) -> list[Pieces]:
    """The expressions to run in turn (as ``match_expressions`` gives FTS5's), as pieces.

    Raises ``InvalidQueryError`` for an empty query, one without words, an FTS syntax error
    or FTS syntax PostgreSQL has no equivalent for."""
    if not query.strip():
        raise InvalidQueryError("the search query is empty")
    if syntax is QuerySyntax.FTS:
        return [_emit(FtsParser(query).parse())]
    words = parse_words(query)
    if not words:
        raise InvalidQueryError(f"the search query has no words to look for: {query!r}")
    terms = [_any_of(word_alternatives(word)) for word in words]
    loose = [_any_of(word_alternatives(word, joined=True)) for word in words]
    expressions = [_join(terms, " & "), _join(loose, " & ")]
    if len(words) > 1:
        expressions.append(_join(loose, " | "))
    unique: dict[tuple[str, ...], Pieces] = {tuple(e): e for e in expressions}
    return list(unique.values())


def _any_of(texts: Sequence[str]) -> Pieces:
    if len(texts) == 1:
        return ["", texts[0], ""]
    pieces = ["("]
    for text in texts:
        pieces += [text, " | "]
    pieces[-1] = ")"
    return pieces


def _join(parts: Sequence[Pieces], operator: str) -> Pieces:
    """Pieces joined by ``operator`` (an operator piece meets the next one's first piece)."""
    joined: Pieces = []
    for part in parts:
        if joined:
            joined[-1] += operator + part[0]
            joined += part[1:]
        else:
            joined = list(part)
    return joined


def tsquery_text(pieces: Sequence[str], normalize: Any = None) -> str:
    """The ``to_tsquery`` text the statement makes of ``pieces`` (``normalize`` standing in
    for ``memq_search_text``): for tests and logs."""
    return "".join(
        piece if n % 2 == 0 else "'" + (normalize(piece) if normalize else piece) + "'"
        for n, piece in enumerate(pieces)
    )


# -- FTS syntax --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Phrase:
    """Words in a row; ``prefixes`` names the words (by position) that are prefixes."""

    words: tuple[str, ...]
    prefixes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Columns:
    weights: frozenset[str]
    child: Node


@dataclass(frozen=True, slots=True)
class Binary:
    operator: str  # AND, OR, NOT
    left: Node
    right: Node


Node = Phrase | Columns | Binary

_BAREWORD: Final = re.compile(r"[A-Za-z0-9_\x1a\x80-\U0010ffff]+")
_SPECIAL: Final = "(){}:,+*-^"
_KEYWORDS: Final = ("AND", "OR", "NOT")
Token = tuple[str, str]  # (kind: word, string or special; text)


class FtsParser:
    """FTS5's query syntax (https://sqlite.org/fts5.html, section 3.7; precedence as its
    grammar has it: OR, then AND, then NOT, then the implicit AND of phrases side by side,
    which does not join a parenthesized group) into a tree, refusing what has no tsquery
    equivalent."""

    def __init__(self, text: str) -> None:
        self._tokens = list(_fts_tokens(text))
        self._at = 0

    def parse(self) -> Node:
        node = self._or()
        if self._peek() is not None:
            raise _syntax_error(self._peek())
        return node

    def _peek(self, ahead: int = 0) -> Token | None:
        at = self._at + ahead
        return self._tokens[at] if at < len(self._tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise _syntax_error(None)
        self._at += 1
        return token

    def _expect(self, kind: str, value: str) -> None:
        if self._peek() != (kind, value):
            raise _syntax_error(self._peek())
        self._at += 1

    def _is(self, kind: str, value: str | None = None, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token is not None and token[0] == kind and (value is None or token[1] == value)

    def _binary(self, operator: str, operand: Any) -> Node:
        node: Node = operand()
        while self._is("word", operator):
            self._take()
            node = Binary(operator, node, operand())
        return node

    def _or(self) -> Node:
        return self._binary("OR", self._and)

    def _and(self) -> Node:
        return self._binary("AND", self._not)

    def _not(self) -> Node:
        return self._binary("NOT", self._implicit)

    def _implicit(self) -> Node:
        """A parenthesized group (with or without a column filter), or phrases side by
        side (each may have a column filter of its own), ANDed."""
        mark = self._at
        weights = self._colset()
        if self._is("special", "("):
            self._take()
            node = self._or()
            self._expect("special", ")")
            return node if weights is None else Columns(weights, node)
        self._at = mark
        node = self._filtered_phrase()
        while self._starts_phrase():
            node = Binary("AND", node, self._filtered_phrase())
        return node

    def _starts_phrase(self) -> bool:
        token = self._peek()
        if token is None:
            return False
        kind, value = token
        if kind == "word":
            return value not in _KEYWORDS
        return kind == "string" or value in ("{", "-", "^")

    def _filtered_phrase(self) -> Node:
        weights = self._colset()
        node = self._phrase()
        return node if weights is None else Columns(weights, node)

    def _colset(self) -> frozenset[str] | None:
        """A column filter and its colon, if one is next: its weight classes."""
        negated = self._is("special", "-")
        at = 1 if negated else 0
        if self._is("special", "{", at):
            names: list[str] = []
            at += 1
            while self._is("word", ahead=at) or self._is("string", ahead=at):
                names.append(self._tokens[self._at + at][1])
                at += 1
            if not names or not self._is("special", "}", at):
                raise _syntax_error(self._peek(at))
            at += 1
        elif self._is("word", ahead=at) or self._is("string", ahead=at):
            names = [self._tokens[self._at + at][1]]
            at += 1
        elif negated:
            raise _syntax_error(self._peek(at))
        else:
            return None
        if not self._is("special", ":", at):
            if negated:
                raise _syntax_error(self._peek(at))
            return None
        self._at += at + 1
        return _weights(names, negated=negated)

    def _phrase(self) -> Phrase:
        if self._is("special", "^"):
            raise InvalidQueryError(
                "the search query uses ^ (a phrase at the start of a column), which has no "
                "equivalent on PostgreSQL"
            )
        if self._is("word", "NEAR") and self._is("special", "(", 1):
            raise InvalidQueryError(
                "the search query uses NEAR(...), which has no equivalent on PostgreSQL: "
                'use a "quoted phrase" or AND'
            )
        words: list[str] = []
        prefixes: set[int] = set()
        while True:
            kind, value = self._take()
            if kind == "special" or (kind == "word" and value in _KEYWORDS):
                raise _syntax_error((kind, value))
            words += [word for word in _WORD_SEPARATORS.split(value) if word]
            if self._is("special", "*"):
                self._take()
                if words:  # a prefix of nothing ("" *) is nothing, as in FTS5
                    prefixes.add(len(words) - 1)
            if not self._is("special", "+"):
                return Phrase(tuple(words), frozenset(prefixes))
            self._take()


def _fts_tokens(text: str) -> Iterator[tuple[str, str]]:
    at = 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
        elif char == '"':
            end = at + 1
            value: list[str] = []
            while True:
                close = text.find('"', end)
                if close < 0:
                    raise InvalidQueryError("invalid search query: fts5: unterminated string")
                value.append(text[end:close])
                if text.startswith('""', close):
                    value.append('"')
                    end = close + 2
                    continue
                at = close + 1
                break
            yield "string", "".join(value)
        elif char in _SPECIAL:
            at += 1
            yield "special", char
        else:
            match = _BAREWORD.match(text, at)
            if match is None:
                raise InvalidQueryError(f"invalid search query: fts5: syntax error near {char!r}")
            at = match.end()
            yield "word", match.group()


def _syntax_error(token: tuple[str, str] | None) -> InvalidQueryError:
    where = "at the end" if token is None else f"near {token[1]!r}"
    return InvalidQueryError(f"invalid search query: fts5: syntax error {where}")


def _weights(names: Sequence[str], *, negated: bool) -> frozenset[str]:
    """The weight classes of a column filter; refused when its columns are not whole classes
    (a weight is the only column information PostgreSQL's tsvector keeps)."""
    wanted = set()
    for name in names:
        column = name.lower()
        if column not in COLUMN_WEIGHTS:
            raise InvalidQueryError(f"invalid search query: no such column: {name}")
        wanted.add(column)
    if negated:
        wanted = set(COLUMN_WEIGHTS) - wanted
    weights = frozenset(COLUMN_WEIGHTS[column] for column in wanted)
    missing = sorted(
        column
        for column, weight in COLUMN_WEIGHTS.items()
        if weight in weights and column not in wanted
    )
    if missing:
        spec = ("-" if negated else "") + "{" + " ".join(names) + "}"
        raise InvalidQueryError(
            f"the column filter {spec} has no equivalent on PostgreSQL, whose index keeps "
            f"{', '.join(missing)} at the same weight: filter on title, body, "
            "{detail facts files command prompt} or {output parts} (or their negations)"
        )
    return weights


def _emit(node: Node, weights: frozenset[str] = _ALL_WEIGHTS) -> Pieces:
    if isinstance(node, Columns):
        narrowed = weights & node.weights
        if not narrowed:
            raise InvalidQueryError(
                "the search query's nested column filters leave no column to search"
            )
        return _emit(node.child, narrowed)
    if isinstance(node, Binary):
        left, right = _emit(node.left, weights), _emit(node.right, weights)
        operator = {"AND": " & ", "OR": " | ", "NOT": " & !"}[node.operator]
        joined = _join([left, right], operator)
        joined[0] = "(" + joined[0]
        joined[-1] += ")"
        return joined
    label = "" if weights == _ALL_WEIGHTS else "".join(sorted(weights))
    weight = ":" + label if label else ""
    if not node.words:
        # Never an empty term ('' is a tsquery syntax error): ' ' has no lexemes, and is
        # dropped as FTS5 drops an empty phrase.
        return ["", " ", ""]
    if not node.prefixes:
        # One quoted term: to_tsquery makes a phrase of its words.
        return ["", " ".join(node.words), weight]
    # Word by word: ':*' after a quoted phrase would make every word of it a prefix.
    pieces = ["(" if len(node.words) > 1 else ""]
    for n, word in enumerate(node.words):
        star = ":*" + label if n in node.prefixes else weight
        pieces += [word, star + " <-> "]
    pieces[-1] = pieces[-1].removesuffix(" <-> ") + (")" if len(node.words) > 1 else "")
    return pieces


# -- the read connection -----------------------------------------------------------------------


class PgConnection:
    """A pool connection with the one call memq's readers make (``execute_fetchall``, as
    aiosqlite's), rows as dicts (``row["column"]``, as sqlite3.Row); a SQLite statement of
    ``memq/storage/queries`` runs in its PostgreSQL form (``pg_form``)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any], url: str) -> None:
        self._conn = conn
        self._url = url

    async def execute_fetchall(
        self, sql: str, parameters: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        try:
            async with self._conn.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(pg_form(sql), parameters)
                return await cursor.fetchall() if cursor.description is not None else []
        except psycopg.errors.SyntaxError as exc:
            # Our statements parse (tested), so a syntax error is to_tsquery's: the query's.
            raise InvalidQueryError(f"invalid search query: {exc}") from None


class PgMemoryReader(MemoryReader):
    """Reads memory on a PostgreSQL pool: what ``MemoryReader`` is on a SQLite file."""

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]],
        url: str,
        *,
        owns_pool: bool = False,
    ) -> None:
        # No SQLite connection to set up: MemoryReader's __init__ is not called.
        self.path = Path(shown_url(url))  # for display only: there is no file
        self.url = url
        self._pool = pool
        self._owns_pool = owns_pool

    @classmethod
    async def open(cls, url: str, options: ConnectOptions | None = None) -> Self:
        """A reader on a pool of its own (closed with the reader), whose transactions are
        read-only: writes belong to the queue's writer, as SQLite's readers' query_only."""
        read_only = replace(options or ConnectOptions(), read_only=True)
        return cls(await open_pool(url, read_only), url, owns_pool=True)

    def sharing(self) -> PgMemoryReader:
        """A reader on this one's pool that leaves closing the pool to this one."""
        return PgMemoryReader(self._pool, self.url)

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.close()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Any]:
        """A pool connection; each statement its own transaction."""
        with storage_errors(self.url):
            async with self._pool.connection() as conn:
                yield PgConnection(conn, self.url)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Any]:
        """A pool connection in a read-only REPEATABLE READ transaction: one snapshot."""
        with storage_errors(self.url):
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield PgConnection(conn, self.url)


__all__ = [
    "COLUMN_WEIGHTS",
    "FtsParser",
    "PgConnection",
    "PgMemoryReader",
    "Pieces",
    "tsquery_expressions",
    "tsquery_text",
    "word_alternatives",
]
