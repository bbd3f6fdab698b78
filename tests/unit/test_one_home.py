"""One home per fact: the names and bounds memq shares across modules are spelled out once,
and every other module imports them.

- every ``MEMQ_*`` variable name: ``memq.env.Variable``;
- the hook events memq subscribes to: ``memq.events.HookEvent``;
- SQLite's integer range and the API's limits: ``memq.limits``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from memq.env import SETTING_VARIABLES, Variable
from memq.events import SUBSCRIBED_EVENTS, HookEvent

ROOT = Path(__file__).parents[2]
VARIABLE_NAME = re.compile(r"MEMQ_[A-Z_]+\b")


def names_of(namespace: type) -> set[str]:
    return {value for key, value in vars(namespace).items() if key.isupper()}


def literals(path: Path) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of every string literal in ``path`` but docstrings (prose)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def memq_files(*but: str) -> list[Path]:
    return sorted(
        path for path in (ROOT / "memq").rglob("*.py") if str(path.relative_to(ROOT)) not in but
    )


class TestVariables:
    def test_variable_lists_every_setting_and_the_home(self) -> None:
        """``Variable`` names MEMQ_HOME and each setting's variable, and nothing else."""
        assert names_of(Variable) == {Variable.HOME, *SETTING_VARIABLES.values()}
        assert all(VARIABLE_NAME.fullmatch(name) for name in names_of(Variable))

    def test_no_module_but_env_spells_a_variable_out(self) -> None:
        """A message may mention a variable in a sentence, but no literal is (or starts with)
        a variable's name outside ``memq.env``."""
        found = [
            f"{path.relative_to(ROOT)}:{line} {text!r}"
            for path in memq_files("memq/env.py")
            for line, text in literals(path)
            if VARIABLE_NAME.match(text)
        ]
        assert found == []


class TestHookEvents:
    def test_hook_event_names_the_subscribed_events(self) -> None:
        assert names_of(HookEvent) == set(SUBSCRIBED_EVENTS)

    def test_no_module_but_events_spells_a_hook_event_out(self) -> None:
        """memq's own event names live in ``memq.events``. Codex CLI and Gemini CLI call
        some of their events by the same names (their ``SessionStart`` is theirs, not
        memq's): their adapters and installers spell their own vocabulary; Claude Code's do
        not, theirs being memq's."""
        natives = {
            str(path.relative_to(ROOT))
            for folder in ("memq/assistants", "memq/hooks/installers")
            for path in (ROOT / folder).glob("*.py")
            if path.stem not in {"claude_code", "__init__", "base"}
        }
        found = [
            f"{path.relative_to(ROOT)}:{line} {text!r}"
            for path in memq_files("memq/events.py", *natives)
            for line, text in literals(path)
            if text in names_of(HookEvent)
        ]
        assert found == []


class TestLimits:
    def test_sqlites_integer_range_is_written_once(self) -> None:
        """``2**63`` appears in ``memq.limits`` alone."""
        found = []
        for path in memq_files("memq/limits.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.BinOp)
                    and isinstance(node.op, ast.Pow)
                    and isinstance(node.right, ast.Constant)
                    and node.right.value == 63
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        assert found == []
