"""The shape of the package: no import cycles, dependencies pointing inward.

The import graph is built from the source with `ast` (every `import`, also inside
functions and under `TYPE_CHECKING`: a cycle there is still a cycle for a reader).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "presencebridge"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# What a layer must not import (module prefixes below the package).
FORBIDDEN = {
    "core": None,  # anything outside core
    "adapters": ("service", "api", "web", "cli", "bootstrap"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module of the package an imported name lives in (a module or its package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` depends on the module pkg.mod when there is one, else
            # on what pkg (its __init__) defines.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for name in names:
            target = resolve(name, known) if name.startswith(PACKAGE) else None
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_the_package() -> None:
    graph = import_graph()
    assert "presencebridge.service.hub" in graph
    assert "presencebridge.core.rules" in graph["presencebridge.service.hub"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_core_imports_nothing_outside_core() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if layer(module) == "core"
        for target in sorted(targets)
        if layer(target) != "core"
    ]
    assert not wrong, "\n".join(wrong)


def test_adapters_do_not_import_the_layers_above() -> None:
    above = FORBIDDEN["adapters"]
    assert above is not None
    wrong = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if layer(module) == "adapters"
        for target in sorted(targets)
        if layer(target) in above
    ]
    assert not wrong, "\n".join(wrong)


def test_a_server_without_ldap_xmpp_or_redis_does_not_load_their_libraries() -> None:
    """Every server pays in memory for what it imports (ldap3, slixmpp and the Redis
    client together about 16 MiB): they are loaded only where such a part is made."""
    probe = (
        "import sys, presencebridge.bootstrap, presencebridge.cli, presencebridge.config; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ldap3', 'slixmpp', 'redis'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
