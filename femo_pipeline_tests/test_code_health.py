"""The code's own health: ruff's configured rules pass, femo's modules import one another without a cycle, and
its packages re-export public names only."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest

from femo_pipeline.resources import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "femo_pipeline"


def test_ruff_finds_nothing():
    """The rules in pyproject.toml's [tool.ruff] (pyflakes, syntax errors, bugbear, import order) over the
    package, the tests and the benchmarks; ruff comes with the test extra."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(PROJECT_ROOT)],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _module_name(path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_at_load(path, name: str, known: set[str]) -> set[str]:
    """The femo modules `name` imports when it loads (module level, not inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m in known and m != name}


def test_the_import_graph_has_no_cycles():
    """Module-level imports between femo's modules form no cycle. An import of a module's own package (a
    submodule reaching a sibling through the package, `from femo_pipeline.warehouse import schema`) is how a
    package's __init__ and its submodules load, not a cycle, and is left out."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imports_at_load(path, name, set(paths)) if not name.startswith(m + ".")}
             for name, path in paths.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join(trail[trail.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


@pytest.mark.parametrize("package", sorted(_module_name(p) for p in PACKAGE.rglob("__init__.py")))
def test_packages_re_export_public_names_only(package):
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    assert not [n for n in exported if n.startswith("_")]
    assert set(exported) <= set(vars(module))


def test_constraints_pin_every_declared_dependency_within_its_range_and_ci_installs_with_them():
    """constraints.txt (the tested versions) names every dependency of pyproject.toml and of its test extra at
    a version its specifier allows; .ci/run runs the README's test command, which installs with it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    for text in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} against {text}"
    readme = (PROJECT_ROOT / "README.md").read_text()
    command = (PROJECT_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert "-c constraints.txt" in command and command in readme
