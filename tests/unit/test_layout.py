"""The architecture, enforced: layers, where engine and ecosystem knowledge may live, sizes, the module map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "isol8"
DEVELOPMENT = PACKAGE.parent / "docs" / "development.md"
MODULES = sorted(PACKAGE.rglob("*.py"))
# the floors above the backends: they reach containers only through isol8.backends.base.Backend
ABOVE_BACKENDS = ("core", "ecosystems", "frontends")
ENGINE_NAMES = {"docker", "podman"}
RUNTIME_NAMES = {"python", "node", "bun", "deno", "bash"}
ECOSYSTEM_NAMES = {"pip", "pypi", "npm", "deno", "apt"}


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def modules_under(*folders: str) -> list[Path]:
    return [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in folders]


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(module: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_layout_has_the_folders_a_newcomer_looks_for() -> None:
    for folder in ("backends/engine", "core", "ecosystems", "frontends/cli", "frontends/server"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
    assert (PACKAGE / "backends" / "base.py").is_file()


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_only_backends_start_processes(path: Path) -> None:
    if path.relative_to(PACKAGE).parts[0] == "backends" or path.name in ("process.py", "spawning.py"):
        return
    reached = {name for name in imported(tree(path)) if name == "subprocess" or name.startswith("isol8.process")}
    assert not reached, f"{rel(path)} imports {reached}: only isol8/backends/ may use isol8.process"


@pytest.mark.parametrize("path", modules_under(*ABOVE_BACKENDS), ids=rel)
def test_nothing_above_the_backends_names_an_engine(path: Path) -> None:
    """No engine module, dialect or `== "podman"` above the backends (prose in help text and comments is fine)."""
    module = tree(path)
    engine_modules = {n for n in imported(module) if n.startswith("isol8.backends.") and n != "isol8.backends.base"}
    engine_modules -= {"isol8.backends.ENGINES", "isol8.backends.KINDS", "isol8.backends.open_backend"}
    engine_modules -= {"isol8.backends.base.Backend", "isol8.backends.base.Planned", "isol8.backends.base.Process"}
    assert not engine_modules, f"{rel(path)} imports {engine_modules}: use isol8.backends.base / open_backend"
    for node in ast.walk(module):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value.lower() not in ENGINE_NAMES, f"{rel(path)}:{node.lineno} names {node.value!r}"
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        assert not re.search(r"docker|podman|dialect", name, re.I), f"{rel(path)}:{node.lineno} uses {name}"


def _switches(module: ast.Module) -> list[tuple[int, str]]:
    """Comparisons of a name with a runtime's or an ecosystem's name: `kind == "npm"`, `runtime in ("node", "bun")`."""
    found = []
    for node in ast.walk(module):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        constants: list[object] = []
        for operand in operands:
            if isinstance(operand, ast.Constant):
                constants.append(operand.value)
            elif isinstance(operand, ast.Tuple | ast.List | ast.Set):
                constants.extend(e.value for e in operand.elts if isinstance(e, ast.Constant))
        hits = [c for c in constants if isinstance(c, str) and c in RUNTIME_NAMES | ECOSYSTEM_NAMES]
        if hits:
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("path", [p for p in MODULES if "ecosystems" not in p.parts], ids=rel)
def test_no_runtime_or_ecosystem_switch_outside_the_ecosystems(path: Path) -> None:
    assert _switches(tree(path)) == [], f"{rel(path)}: per-ecosystem logic belongs in isol8/ecosystems/"


def test_the_switch_detector_finds_switches() -> None:
    code = 'if kind == "npm": pass\nif runtime.name in ("node", "bun"): pass\nif got.kind == "exit": pass\n'
    assert [line for line, _ in _switches(ast.parse(code))] == [1, 2]


@pytest.mark.parametrize("path", MODULES, ids=rel)
def test_modules_and_functions_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"{rel(path)} has {lines} lines: split it"
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= 60, f"{rel(path)}:{node.lineno} {node.name} has {length} lines"


@pytest.mark.parametrize("path", modules_under("frontends"), ids=rel)
def test_front_ends_need_no_type_ignores(path: Path) -> None:
    assert "type: ignore" not in path.read_text(encoding="utf-8"), rel(path)


def _map_entries() -> dict[str, str]:
    """`isol8/...py`: one line each, in the development map of docs/development.md."""
    text = DEVELOPMENT.read_text(encoding="utf-8")
    section = text.split("## Development map", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `(isol8/[\w/]+\.py)` \| (.+?) \|$", section, re.M))


def test_the_readme_map_lists_every_module_once() -> None:
    entries = _map_entries()
    modules = {rel(p) for p in MODULES if p.parent != PACKAGE / "data"}
    assert sorted(modules - set(entries)) == [], "add these modules to the development map in docs/development.md"
    assert sorted(set(entries) - modules) == [], (
        "the development map in docs/development.md names modules that do not exist"
    )


def test_every_package_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages: a new sub-package missing there works in a checkout
    and an editable install, and is absent from the installed isol8."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    found = {name for name in found if "__pycache__" not in name}
    assert sorted(found - listed) == [], "add these to [tool.setuptools] packages in pyproject.toml"
