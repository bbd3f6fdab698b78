"""Each package's face: the names its ``__init__`` offers (``__all__``) are the ones it means to
offer, and its private modules stay its own.

The expected names are written out here, so that changing what a package offers is a
deliberate act: change the package's ``__all__`` and this list together.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGE_DIR = ROOT / "memq"

FACES: dict[str, frozenset[str]] = {
    "memq": frozenset({"__version__"}),
    "memq.assistants": frozenset(
        {"ASSISTANT_OPTION", "CLAUDE_CODE", "NAMES", "adapter", "canonical_name"}
    ),
    "memq.cli": frozenset({"main"}),
    "memq.client": frozenset(),
    "memq.hooks": frozenset(),
    "memq.hooks.installers": frozenset({"AssistantInstaller", "ConfigChange", "Json", "installer"}),
    "memq.mcp": frozenset(),
    "memq.memory": frozenset(
        {
            "MemoryBackend",
            "MemoryStore",
            "ObservationKind",
            "ObservationRecord",
            "Page",
            "ProcessResult",
            "PromptRecord",
            "SessionContext",
            "SessionDetail",
            "SessionInfo",
            "SummaryRecord",
        }
    ),
    "memq.memory.archive": frozenset(
        {
            "FORMAT",
            "ExportDocument",
            "ExportSource",
            "ExportedRecord",
            "ExportedSession",
            "ImportResult",
            "SessionExporter",
            "import_effect",
            "number_prompts",
            "parse_export",
        }
    ),
    "memq.processors": frozenset(
        {
            "ExtractProcessor",
            "ProcessResult",
            "Processor",
            "SessionContext",
            "get_processor",
            "processor_names",
        }
    ),
    "memq.processors.extract": frozenset(
        {
            *("SUMMARY_TEXT_CHARS", "TOOL_KINDS", "ExtractProcessor", "Noise", "Turn"),
            *("edit_diff", "extract_observation", "next_steps", "noise_reason"),
            *("relative_path", "summarize", "tool_call_payload", "turn_of"),
        }
    ),
    "memq.processors.llm": frozenset(
        {
            "ANTHROPIC",
            "ANTHROPIC_VERSION",
            "OPENAI",
            "AnthropicProcessor",
            "AsksAModel",
            "ClaudeCodeProcessor",
            "ClaudeCodeSettings",
            "LLMSettings",
            "ModelProcessor",
            "OpenAIProcessor",
            "Provider",
            "retry_after",
        }
    ),
    "memq.queue.postgres": frozenset({"PgQueue", "PgSettings", "PgTransaction"}),
    "memq.queue": frozenset(
        {
            "SYSTEM_CLOCK",
            "Claim",
            "ClaimState",
            "Clock",
            "Effect",
            "Enqueued",
            "EpochMs",
            "FailedMessage",
            "FileProblem",
            "Installed",
            "InstanceLock",
            "MaintenanceReport",
            "Message",
            "MessageKind",
            "MessageStatus",
            "Queue",
            "QueueBase",
            "QueueSettings",
            "QueueStats",
            "Replacement",
            "SessionStream",
            "SpanMs",
            "StatusCounts",
            "Synchronous",
            "Transaction",
            "earlier",
            "is_out_of_space",
            "later",
            "lock_path_for",
            "span",
        }
    ),
    "memq.storage": frozenset(),
    "memq.storage.postgres": frozenset(),
    "memq.team": frozenset(),
    "memq.worker": frozenset(),
    "memq.worker.http": frozenset({"create_app"}),
    "memq.worker.http.routes": frozenset({"ROUTES"}),
}


def packages() -> list[str]:
    """Every package under memq/ (a directory with an ``__init__.py``)."""
    return sorted(
        ".".join(init.parent.relative_to(ROOT).parts) for init in PACKAGE_DIR.rglob("__init__.py")
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_paths(tree: ast.AST) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every absolute import: ``import a.b`` gives ``("a.b",
    None)``, ``from a.b import c`` gives ``("a.b", "c")``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def private_owner(module: str, name: str | None) -> str | None:
    """The package whose private module or name the import reaches into, or None.

    ``memq.queue._lock`` is private to ``memq.queue``; ``memq.repair._partial_where``
    to ``memq.storage`` (a module's private names belong to its package)."""
    parts = module.split(".") + ([name] if name else [])
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            owner = ".".join(parts[:index])
            if (ROOT / Path(*parts[:index])).is_dir():
                return owner
            return owner.rpartition(".")[0]  # a private name of a module: its package's
    return None


def python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


class TestFaces:
    def test_every_package_has_a_face_here(self) -> None:
        """A new package says what it offers, and is added to this list."""
        assert packages() == sorted(FACES)

    @pytest.mark.parametrize("package", sorted(FACES))
    def test_all_is_what_the_package_means_to_offer(self, package: str) -> None:
        """``__all__`` is exactly the names written above (an empty one is honest too)."""
        module = importlib.import_module(package)
        offered = getattr(module, "__all__", None)
        assert offered is not None, f"{package} has no __all__"
        assert len(offered) == len(set(offered)), f"{package}.__all__ names a name twice"
        assert set(offered) == FACES[package]

    @pytest.mark.parametrize("package", sorted(FACES))
    def test_every_offered_name_resolves(self, package: str) -> None:
        """Each name in ``__all__`` is there to import."""
        module = importlib.import_module(package)
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == []


class TestPrivateModules:
    def test_memq_never_reaches_into_another_packages_private_modules(self) -> None:
        """Outside its package, a private module (``memq.queue._lock``) or name is never
        imported: the rest of memq goes through the face."""
        trespasses = []
        for path in python_files("memq"):
            importer = module_name(path)
            for line, module, name in imported_paths(ast.parse(path.read_text())):
                owner = private_owner(module, name)
                if owner is None or not owner.startswith("memq"):
                    continue
                if importer != owner and not importer.startswith(owner + "."):
                    trespasses.append(f"{path.relative_to(ROOT)}:{line} {module} {name or ''}")
        assert trespasses == []

    def test_tests_and_scripts_take_from_the_face_what_it_offers(self) -> None:
        """Tests and scripts may look inside a package (a private helper under test), but a
        name the package's face offers is imported from the face."""
        detours = []
        for path in python_files("tests", "scripts"):
            for line, module, name in imported_paths(ast.parse(path.read_text())):
                owner = private_owner(module, None)
                if owner is None or name is None or not owner.startswith("memq"):
                    continue
                face = importlib.import_module(owner)
                if name in getattr(face, "__all__", ()):
                    detours.append(f"{path.relative_to(ROOT)}:{line} {name} from {owner}")
        assert detours == []
