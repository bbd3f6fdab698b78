"""memq's errors: one tree in ``memq.exceptions``, drawn in its docstring, each class with the
HTTP status it answers; and no error raised on purpose from outside it."""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from starlette.requests import Request

import memq
from memq import exceptions
from memq.exceptions import DiskFullError, MemqError
from memq.worker.http.app import _memq_error

PACKAGE = Path(memq.__file__).parent

# Every exception class the module defines, and those of them that are memq errors.
ALL_CLASSES: list[type[BaseException]] = sorted(
    (
        value
        for value in vars(exceptions).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == exceptions.__name__
    ),
    key=lambda cls: cls.__name__,
)
CLASSES: list[type[MemqError]] = [cls for cls in ALL_CLASSES if issubclass(cls, MemqError)]

# Raises of these built-in errors are the mark of an error raised from outside the tree.
BUILTIN_ERRORS = frozenset(
    {"KeyError", "ValueError", "RuntimeError", "LookupError", "Exception", "BaseException"}
)

# The raises of built-in errors that stay, by module and function. Each checks an argument
# that memq's own code passes (constants, or a value already checked where it came in: the
# MEMQ_* variables by their ranges in memq.env, HTTP and CLI values by their parsers). One
# raised means a bug in memq, not a condition a user, a file or a remote service can cause,
# and a built-in error is Python's contract for that; nothing catches them on purpose.
ALLOWED_BUILTIN_RAISES = {
    # Constructors and settings objects refusing values outside their domain.
    ("queue/_settings.py", "QueueSettings.__post_init__"),
    ("queue/postgres/settings.py", "PgSettings.__post_init__"),
    # memq's own SQL files: an unknown dialect, a PostgreSQL overlay naming no query, a ?
    # parameter (caught by tests/unit/test_sql_dialects.py, never by a user).
    ("storage/sqlfile.py", "load_queries"),
    ("queue/_stream.py", "SessionStream.__init__"),
    ("worker/activity.py", "ActivityTracker.__init__"),
    ("worker/disk.py", "Reserve.__init__"),
    ("worker/forks.py", "ForkLinker.__init__"),
    ("worker/intake_gate.py", "IntakeGate.__init__"),
    ("memory/usage.py", "UsageRecorder.__init__"),
    ("team/rate_limit.py", "RateLimiter.__init__"),
    ("team/rate_limit.py", "FailureLimiter.__init__"),
    ("team/audit_retention.py", "AuditRetention.__init__"),
    ("team/audit_retention.py", "AuditRetention.run"),
    ("processors/budget.py", "TokenBudget.__init__"),
    # A subclass paired with the wrong provider's settings.
    ("processors/llm/_client.py", "ModelProcessor.__init__"),
    # Preconditions of functions whose callers check first: a negative delay, a body limit
    # below the least (MEMQ_BODY_LIMIT's range starts above it), a history of fewer than one
    # item or with more entries than its span.
    ("queue/_claim.py", "Claim.defer"),
    ("hooks/fit.py", "fit_body"),
    ("memory/history.py", "shape_history"),
    # A descriptor used after close: ValueError, as for a closed file object.
    ("queue/_files.py", "DatabaseFiles.fd"),
    # The test clock refusing to run backwards (testing.py is for tests).
    ("queue/testing.py", "ManualClock.advance"),
    # memq's own .sql files with a name twice or an empty statement: a packaging bug.
    ("storage/sqlfile.py", "parse_named_queries"),
    # A lookup by a table's name: KeyError is the mapping contract; its one caller catches it.
    ("repair.py", "RepairReport.table"),
}

# Exception classes defined outside memq.exceptions: only ones that never leave their module.
ALLOWED_PRIVATE_CLASSES = {
    # A field's value of the wrong type; read_field turns it into InvalidArchiveError.
    ("memory/archive/_format.py", "Mismatch"),
    # One event of a team batch refused; BatchIntake turns it into that event's answer.
    ("team/intake.py", "_Refused"),
}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return exc.id if isinstance(exc, ast.Name) else None


class _Finder(ast.NodeVisitor):
    """The raises of built-in errors and the exception classes in one module."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.raises: list[tuple[str, str, int]] = []  # (qualname, error, line)
        self.classes: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
        if any(name.endswith(("Error", "Exception")) for name in bases):
            self.classes.append(node.name)
        self._nested(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._nested(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Raise(self, node: ast.Raise) -> None:
        name = _raised_name(node)
        if name in BUILTIN_ERRORS:
            self.raises.append((".".join(self.scope), name, node.lineno))
        self.generic_visit(node)

    def _nested(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()


def _tree_entries() -> dict[str, tuple[int, str]]:
    """Each class the docstring's drawing names: its column, and its line(s) of text."""
    entries: dict[str, tuple[int, str]] = {}
    current = None
    drawing = (exceptions.__doc__ or "").split("\n\n")[1]
    for line in drawing.splitlines():
        found = re.match(r"^([\s│]*)(?:[├└]── )?(\w+Error|MemqError)\b(.*)$", line)
        if found and (found.group(2) == "MemqError" or "── " in line):
            current = found.group(2)
            entries[current] = (len(found.group(1)) + (4 if "── " in line else 0), found.group(3))
        elif current is not None:
            column, text = entries[current]
            entries[current] = (column, f"{text} {line.strip(' │')}")
    return entries


class TestTree:
    def test_every_class_is_a_memq_error_with_a_docstring(self) -> None:
        """Each class descends from MemqError and says, in its own docstring, what it means."""
        assert CLASSES == ALL_CLASSES
        for cls in CLASSES:
            assert (vars(cls).get("__doc__") or "").strip(), cls

    def test_the_drawing_is_the_hierarchy(self) -> None:
        """The module docstring draws every class, under its parent, and nothing else."""
        entries = _tree_entries()
        assert set(entries) == {cls.__name__ for cls in CLASSES}
        columns = {name: column for name, (column, _) in entries.items()}
        names = list(entries)
        for cls in CLASSES:
            if cls is MemqError:
                continue
            parent = next(base for base in cls.__bases__ if issubclass(base, MemqError))
            above = names[: names.index(cls.__name__)]
            drawn = next(n for n in reversed(above) if columns[n] < columns[cls.__name__])
            assert drawn == parent.__name__, cls
            assert columns[cls.__name__] == columns[parent.__name__] + 4, cls

    def test_the_drawing_gives_each_http_status(self) -> None:
        """A class that answers a status shows it in the drawing; one that does not, none."""
        for name, (_, text) in _tree_entries().items():
            status = getattr(exceptions, name).http_status
            shown = re.search(r"\((\d{3})\b", text)
            assert (int(shown.group(1)) if shown else None) == status, name

    @pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
    def test_http_status_is_an_error_status_or_none(self, cls: type[MemqError]) -> None:
        assert cls.http_status is None or 400 <= cls.http_status <= 599

    def test_the_module_imports_nothing(self) -> None:
        """The hook imports it on every event: it stays free of imports (typing only for
        the type checker)."""
        tree = ast.parse(Path(exceptions.__file__).read_text(encoding="utf-8"))
        imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
        assert [node.module for node in imports if isinstance(node, ast.ImportFrom)] == [
            "__future__"
        ]


class TestNothingOutsideTheTree:
    def test_no_builtin_error_is_raised_on_purpose(self) -> None:
        """memq raises KeyError, ValueError, RuntimeError, LookupError or Exception only
        where the allow-list above says why."""
        found: set[tuple[str, str]] = set()
        unexpected: list[str] = []
        for path, tree in _modules():
            finder = _Finder()
            finder.visit(tree)
            for qualname, error, line in finder.raises:
                found.add((path, qualname))
                if (path, qualname) not in ALLOWED_BUILTIN_RAISES:
                    unexpected.append(f"memq/{path}:{line} {qualname} raises {error}")
        assert unexpected == []
        assert found >= ALLOWED_BUILTIN_RAISES, "an allowed raise is gone: drop it from the list"

    def test_no_exception_class_outside_the_tree(self) -> None:
        """Error classes live in memq.exceptions, but for private ones that never escape."""
        found = set()
        for path, tree in _modules():
            if path == "exceptions.py":
                continue
            finder = _Finder()
            finder.visit(tree)
            found |= {(path, name) for name in finder.classes}
        assert found == ALLOWED_PRIVATE_CLASSES


def _request(disk: Any = None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(services=SimpleNamespace(disk=disk)))
    scope = {"type": "http", "method": "GET", "path": "/api/x", "headers": [], "app": app}
    return Request(scope)


class TestHttpAnswer:
    """The API answers a memq error by its class's ``http_status``."""

    @pytest.mark.parametrize(
        "cls",
        [cls for cls in CLASSES if cls.http_status is not None and cls is not DiskFullError],
        ids=lambda cls: cls.__name__,
    )
    def test_the_status_and_message(self, cls: type[MemqError]) -> None:
        response = anyio.run(_memq_error, _request(), cls("what went wrong"))
        assert response.status_code == cls.http_status
        error = "what went wrong"
        if cls.http_status == 503:
            error = f"memq cannot store this now: {error}"
        assert json.loads(bytes(response.body)) == {"error": error}

    def test_a_full_disk_says_so(self) -> None:
        disk = SimpleNamespace(message=lambda: "the disk is full", report=lambda: {"free": 0})
        response = anyio.run(_memq_error, _request(disk), DiskFullError("SQLITE_FULL"))
        assert response.status_code == 503
        assert json.loads(bytes(response.body)) == {
            "error": "memq cannot store this now: the disk is full",
            "reason": "disk_full",
            "disk": {"free": 0},
        }

    @pytest.mark.parametrize(
        "cls", [cls for cls in CLASSES if cls.http_status is None], ids=lambda cls: cls.__name__
    )
    def test_no_status_goes_on_as_an_internal_error(self, cls: type[MemqError]) -> None:
        """Raised again, for the handler of every other error (500, logged)."""
        error = cls("a bug")
        with pytest.raises(cls) as raised:
            anyio.run(_memq_error, _request(), error)
        assert raised.value is error
