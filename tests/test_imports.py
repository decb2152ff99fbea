"""The layers run one way: no import cycle in the package, and the format layer (minidump/)
never reaches into a backend.  Every import counts, at module level or inside a function, and
those under ``if TYPE_CHECKING:`` too: a function-level import only hides a cycle."""

from __future__ import annotations

import ast
import pathlib
import re

import snapshotdump

PACKAGE = pathlib.Path(snapshotdump.__file__ or "").resolve().parent
BACKENDS = ("snapshotdump._linux", "snapshotdump._windows")


def _modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """Module name -> (file, is a package), generated bindings left out."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "_bindings" and path.name.endswith("_ffi.py"):
            continue
        parts = ["snapshotdump", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imports(name: str, path: pathlib.Path, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that *name* imports, wherever in the file."""
    found: set[str] = set()
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in known else module)
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, is_package, known)
            for name, (path, is_package) in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle found by a depth-first walk, as the path that closes it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                cycles.append([*path[path.index(child):], child])
            elif child not in state:
                visit(child)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_walk_sees_every_kind_of_import() -> None:
    """The walker itself: relative, absolute, function-level and TYPE_CHECKING imports."""
    graph = _graph()
    assert "snapshotdump._linux.dump.writer" in graph["snapshotdump._linux.snapshot"]  # in a def
    assert "snapshotdump.minidump.file" in graph["snapshotdump._linux.clone_stream"]  # typing
    assert "snapshotdump.errors" in graph["snapshotdump._linux.procfs"]  # from .. import errors
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_format_layer_imports_no_backend() -> None:
    graph = _graph()
    wrong = {name: sorted(m for m in imported if m.startswith(BACKENDS))
             for name, imported in graph.items() if name.startswith("snapshotdump.minidump")}
    assert not any(wrong.values()), wrong


# The distribution names in pyproject.toml's dependencies, and what importing them looks like.
IMPORT_NAMES = {"cffi": {"cffi", "_cffi_backend"}, "typing-extensions": {"typing_extensions"},
                "pyelftools": {"elftools"}}


def test_every_dependency_is_imported() -> None:
    """A dependency nothing imports is dead weight on every install (the generated bindings,
    which import _cffi_backend, count: they are part of what is installed)."""
    pyproject = (pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)\]", pyproject, re.M | re.S)
    assert block is not None
    declared = {re.split(r"[<>=!~ \[]", name, maxsplit=1)[0].lower()
                for name in re.findall(r'"([^"]+)"', block.group(1))}
    assert declared == set(IMPORT_NAMES), "a dependency changed: update IMPORT_NAMES"
    imported: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    unused = {name for name, modules in IMPORT_NAMES.items() if not modules & imported}
    assert not unused, f"declared but never imported: {sorted(unused)}"
