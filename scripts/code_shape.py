"""Print the shape of the ``memq`` package: its tree, the imports between its packages and its
longest functions.

    .venv/bin/python scripts/code_shape.py [--longest N] [--root memq]

Reads source files only (``ast``), imports nothing of memq. "Package" means the first level
below ``memq`` (``memq.queue``, ``memq.worker``, ...); modules directly in ``memq/`` count as
``memq`` itself. An import inside a function counts like one at the top: both are edges a
reader has to follow.
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Function:
    module: str
    name: str
    lines: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, top: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != top:
        return module
    # memq/cli.py and memq/cli/ are both "memq.cli": a module at the top is its own package.
    return ".".join(parts[:2])


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                keep = len(base) - node.level + (1 if is_package else 0)
                prefix = ".".join(base[:keep])
                found.append(f"{prefix}.{node.module}" if node.module else prefix)
            elif node.module:
                found.append(node.module)
    return found


def functions(tree: ast.AST, module: str) -> list[Function]:
    out: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                end = child.end_lineno or child.lineno
                out.append(Function(module, prefix + child.name, end - child.lineno + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return out


def tree_lines(root: Path) -> list[str]:
    lines: list[str] = []

    def walk(directory: Path, depth: int) -> None:
        entries = sorted(
            p
            for p in directory.iterdir()
            if p.name != "__pycache__" and (p.is_dir() or p.suffix in {".py", ".sql"})
        )
        for entry in entries:
            indent = "  " * depth
            if entry.is_dir():
                lines.append(f"{indent}{entry.name}/")
                walk(entry, depth + 1)
            else:
                count = len(entry.read_text(encoding="utf-8").splitlines())
                lines.append(f"{indent}{entry.name:<{max(1, 34 - len(indent))}} {count:>5}")

    lines.append(f"{root.name}/")
    walk(root, 1)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(ROOT / "memq"))
    parser.add_argument("--longest", type=int, default=15)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    top = root.name

    edges: Counter[tuple[str, str]] = Counter()
    every: list[Function] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        every.extend(functions(tree, module))
        source_package = package_of(module, top)
        for target in imported_modules(tree, module, path.name == "__init__.py"):
            if target != top and not target.startswith(top + "."):
                continue
            target_package = package_of(target, top)
            if target_package != source_package:
                edges[(source_package, target_package)] += 1

    print("== tree (lines per file)")
    print("\n".join(tree_lines(root)))

    print("\n== imports between packages (importer -> imported: import statements)")
    by_source: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (source, target), count in sorted(edges.items()):
        by_source[source].append((target, count))
    for source, targets in sorted(by_source.items()):
        listed = ", ".join(f"{t.removeprefix(top + '.')} {n}" for t, n in targets)
        print(f"{source.removeprefix(top + '.'):<22} -> {listed}")

    print(f"\n== longest functions (top {args.longest})")
    for fn in sorted(every, key=lambda f: -f.lines)[: args.longest]:
        print(f"{fn.lines:>5}  {fn.module}.{fn.name}")
    over_50 = sum(1 for f in every if f.lines > 50)
    print(f"functions: {len(every)}, over 50 lines: {over_50}")


if __name__ == "__main__":
    main()
