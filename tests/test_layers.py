"""The package's import structure: imports point downward, so none is hidden inside a function.

A function-local ``from softdistill... import`` is how an import cycle is kept from failing at
import time. Allowed only where a module must stay free of torch for an instant ``--help``: the
command line (``cli/``), the lazy top-level ``softdistill.X`` names, and the two config modules,
whose ``validate()`` reaches the registries (datasets, architectures, baselines, ...) when called.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import softdistill

PACKAGE = Path(softdistill.__file__).parent
ALLOWED = {"__init__.py", "__main__.py"}  # lazy top-level names; python -m softdistill
TORCH_FREE = {"config.py", "train_config.py"}  # imported by the CLI before any --help


def _modules() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if "cli" not in p.relative_to(PACKAGE).parts and p.name not in ALLOWED
    )


def _local_package_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            names = [n for n in names if n == "softdistill" or n.startswith("softdistill.")]
            found += [f"{path.relative_to(PACKAGE)}:{node.lineno} {n}" for n in names]
    return found


def test_no_function_local_imports_of_the_package_outside_the_cli():
    assert len(_modules()) > 20
    found = [
        hit for p in _modules() if p.name not in TORCH_FREE for hit in _local_package_imports(p)
    ]
    assert found == [], "function-local package imports (an import cycle?):\n" + "\n".join(found)


def test_every_module_imports_first_in_a_fresh_package():
    """Each module imported first (the package's modules dropped from ``sys.modules`` before
    each): a cycle that only some import orders survive fails here."""
    names = [
        "softdistill." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in _modules()
    ]
    names = [n.removesuffix(".__init__") for n in names]
    script = (
        "import importlib, sys\n"
        "import torch  # loaded once: only the package is re-imported\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m.split('.')[0] == 'softdistill']:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
        "print(len(" + repr(names) + "))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == str(len(names))


def _module_name(path: Path) -> str:
    parts = ("softdistill", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts).removesuffix(".__init__")


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports when it is imported (module-level imports,
    those under ``if``/``try`` included, ``if TYPE_CHECKING:`` blocks excluded)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def imports(name: str, path: Path) -> set[str]:
        found: set[str] = set()

        def visit(body) -> None:
            for node in body:
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    continue
                if isinstance(node, ast.If | ast.Try):
                    visit(node.body)
                    visit(node.orelse)
                    for handler in getattr(node, "handlers", []):
                        visit(handler.body)
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
                        for _ in range(node.level - 1):
                            pkg = pkg.rpartition(".")[0]
                        base = pkg + ("." + base if base else "")
                    for alias in node.names:
                        sub = f"{base}.{alias.name}"
                        found.add(sub if sub in modules else base)
                elif isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)

        visit(ast.parse(path.read_text()).body)
        return {m for m in found if m in modules and m != name}

    return {name: imports(name, path) for name, path in modules.items()}


def test_the_import_graph_of_the_package_is_a_dag():
    graph = _import_graph()
    assert len(graph) > 40 and "softdistill.core" in graph["softdistill.distillation"]
    cycles, state, stack = [], {}, []

    def visit(u: str) -> None:
        state[u] = "open"
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                cycles.append(" -> ".join([*stack[stack.index(v) :], v]))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


# The assembly: the modules that turn settings into parts. Below them no module imports the
# settings class; they take the parts, or small specs such as ``nets.NetSpec``.
ASSEMBLY = {
    "softdistill",
    "softdistill.api",
    "softdistill.distillation",
    "softdistill.train_config",
}


def test_only_the_assembly_imports_the_settings_class():
    graph = _import_graph()
    readers = sorted(
        m
        for m, deps in graph.items()
        if "softdistill.config" in deps
        and m not in ASSEMBLY
        and not m.startswith("softdistill.cli")
    )
    assert "softdistill.config" in graph["softdistill.distillation"]
    assert readers == [], "modules below the assembly importing softdistill.config: " + ", ".join(
        readers
    )
