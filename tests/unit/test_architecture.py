"""The layout's rules, read from the code's own imports (every import, also those inside
functions): dependencies point one way, sub-packages form no cycle, production code never
imports the development tooling, and the engagement model and the notification policy are
pure. A new violation fails here with the file, the line and the rule it breaks."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "ops", "agents", "sinks", "stream")
# A package may import its own layer and those below it, never one above.
LAYER = {name: rank for rank, name in enumerate(PACKAGES)}
# Code that may run in production never imports these; only they themselves and the
# command family that starts them (``engagement stack|demo|bench|simulate|receiver``) may.
DEV = "stream.dev"
DEV_ALLOWED = ("stream.dev", "stream.cli.dev")
# Pure rooms: no broker, no Redis, no clock, no I/O loop.
PURE = ("agents.model", "agents.adapters", "sinks.policy", "stream.api.access")
IMPURE_MODULES = ("redis", "faust", "mode", "kafka", "aiokafka", "asyncio", "time", "aiohttp")
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in a module, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((node.lineno, base))
            # ``from stream.dev import stack`` imports the module stream.dev.stack
            out.extend(
                (node.lineno, f"{base}.{alias.name}")
                for alias in node.names
                if f"{base}.{alias.name}" in MODULES
            )
    return out


def _project(imported: str) -> str | None:
    top = imported.split(".")[0]
    return top if top in LAYER else None


def _room(module: str) -> str:
    """The sub-package a module lives in (a top-level package's own modules: the package)."""
    parts = module.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    name = ".".join(parts)
    path = MODULES.get(name)
    if path is not None and path.name == "__init__.py":
        return name
    return ".".join(parts[:-1]) if len(parts) > 1 else name


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_layers_point_one_way() -> None:
    wrong = []
    for name, path in MODULES.items():
        own = name.split(".")[0]
        for line, imported in _imports(name, path):
            other = _project(imported)
            if other is not None and LAYER[other] > LAYER[own]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} {own} imports {imported}")
    assert wrong == [], "imports that point up (schemas < ops < agents < sinks < stream):\n" + (
        "\n".join(wrong)
    )


def test_ops_imports_only_schemas_and_metrics() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith("ops")
        for line, imported in _imports(name, path)
        if _project(imported) not in (None, "schemas", "ops")
    ]
    assert wrong == []


def test_no_production_module_imports_the_dev_tooling() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for name, path in MODULES.items()
        if not _within(name, DEV_ALLOWED)
        for line, imported in _imports(name, path)
        if _within(imported, (DEV,))
    ]
    assert wrong == []


def _room_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        here = _room(name)
        for _, imported in _imports(name, path):
            if _project(imported) is None:
                continue
            there = _room(imported)
            if there and there != here:
                graph[here].add(there)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_cycle_between_sub_packages() -> None:
    cycle = _cycle(_room_graph())
    assert cycle is None, "sub-packages import each other in a circle: " + " -> ".join(cycle or [])


def test_pure_rooms_have_no_broker_redis_or_clock() -> None:
    wrong = []
    for name, path in MODULES.items():
        if not _within(name, PURE):
            continue
        for line, imported in _imports(name, path):
            top = imported.split(".")[0]
            if top in IMPURE_MODULES:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
            elif _project(imported) and not _within(imported, ("schemas", *PURE)):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {imported} (not pure)")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_CALLS
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} reads the clock")
    assert wrong == []


def test_the_checker_sees_a_violation() -> None:
    """The rules above are not vacuous: the checker finds imports, rooms and a planted cycle."""
    assert any(
        i == "schemas.nudges" for _, i in _imports("sinks.notifier", MODULES["sinks.notifier"])
    )
    assert _room("agents.model.rules") == "agents.model"
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}
