"""The direction of the layers, checked on the source: `http/` → `services/` → `storage/`, `db/`,
`security/`; nothing below `http/` knows about HTTP or Sanic; no import cycles at all.

Every import counts, including those inside functions (a lazy import hides a cycle from the
interpreter, not from a reader), except those under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "artifacta_box"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# Packages that must never import the HTTP layer or the web framework.
BELOW_HTTP = ("services", "storage", "db", "security", "web")
FORBIDDEN_FOR_BELOW_HTTP = (f"{PACKAGE}.http", f"{PACKAGE}.app", f"{PACKAGE}.server", "sanic")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and (
        (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
        or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
    )


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every module `module` imports (third-party ones by their top-level name)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_resolve(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else _resolve(target, known))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def _resolve(name: str, known: set[str]) -> str:
    """The longest known module prefix of `name`, else its top-level package."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        candidate = ".".join(parts[:i])
        if candidate in known:
            return candidate
    return parts[0]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: {t for t in _imports(m, p, known) if t in known or not t.startswith(PACKAGE)}
            for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _forbidden(graph: dict[str, set[str]]) -> list[str]:
    offenders = []
    for module, targets in sorted(graph.items()):
        layer = module.split(".")[1] if "." in module else ""
        if layer not in BELOW_HTTP:
            continue
        for target in sorted(targets):
            if any(target == f or target.startswith(f + ".") for f in FORBIDDEN_FOR_BELOW_HTTP):
                offenders.append(f"{module} imports {target}")
    return offenders


def test_no_layer_below_http_imports_http_or_sanic():
    assert _forbidden(_graph()) == []


def test_there_are_no_import_cycles():
    assert _cycles(_graph()) == []


def test_one_blueprint_never_imports_another():
    graph = _graph()
    blueprints = {m for m, p in _modules().items()
                  if m.startswith(f"{PACKAGE}.http.") and "Blueprint(" in p.read_text()}
    offenders = [f"{m} imports {t}" for m in sorted(blueprints) for t in sorted(graph[m])
                 if t in blueprints]
    assert offenders == []


def test_the_checker_sees_a_cycle_and_a_forbidden_import():
    """The checks above can fail: a made-up graph with both faults is caught."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    bad = {"artifacta_box.services.x": {"sanic"},
           "artifacta_box.db.y": {"artifacta_box.http.common"},
           "artifacta_box.http.z": {"sanic", "artifacta_box.services.x"}}
    assert _forbidden(bad) == ["artifacta_box.db.y imports artifacta_box.http.common",
                               "artifacta_box.services.x imports sanic"]
