"""The shape of the code, held by a test (docs/architecture.md has the map): which package may
import which, no import cycles, no import of our own modules hidden inside a function, no module
too long to read in one sitting, no `global` statement, and nothing citing a document outside the
repository. Read from the source with `ast`, without importing anything."""

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mail", "providers", "mailer_project", "devtools")
MAX_MODULE_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path)] = path
    return found


MODULES = modules()


def imports_of(name: str, path: Path, inside_functions: bool = False) -> set[str]:
    """The modules `name` imports (absolute names), at module level or inside functions."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node, in_function in _walk(tree, False):
        if in_function != inside_functions:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from package import module` imports the module (its package is Python's business);
            # `from module import name`, the module.
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(target)
    return found


def _walk(node, in_function):
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        yield from _walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def first_party(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in PACKAGES}


def graph() -> dict[str, set[str]]:
    """Module → the first-party modules it imports (a package's import counts as its __init__'s)."""
    return {
        name: {n for n in first_party(imports_of(name, path)) if n in MODULES and n != name} for name, path in MODULES.items()
    }


def test_the_reader_finds_imports_both_ways():
    edges = graph()
    assert "mail.delivery_task" in edges["mail.delivery"]  # from .delivery_task import DeliveryTask
    assert "providers.registry" in edges["mail.models"]  # from providers.registry import REGISTRY
    assert "mail.claims" in edges["mail.decisions"]  # from . import claim_check, claims


def test_no_import_cycles():
    edges = graph()
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def strongly_connected(node):  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                strongly_connected(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            # A package's __init__ and its own modules are not a cycle of ours.
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in edges:
        if node not in index:
            strongly_connected(node)
    assert cycles == []


# (importer prefix, forbidden import prefixes, why)
RULES = [
    (
        "providers",
        ("django", "rest_framework", "mail", "mailer_project", "devtools"),
        "providers take plain configuration and no framework",
    ),
    ("mail.exceptions", ("django", "rest_framework"), "the domain's errors are Django-free"),
    ("mail", ("devtools", "tests", "bench"), "the service never imports its development doubles"),
    ("mailer_project", ("devtools", "tests", "bench"), "the service never imports its development doubles"),
    ("mail", ("mailer_project",), "the app does not reach into the project that wires it (Celery: current_app)"),
]
CORE_EXEMPT = ("mail.api", "mail.admin", "mail.management")


def test_forbidden_import_directions():
    broken = []
    for name, path in MODULES.items():
        imported = imports_of(name, path) | imports_of(name, path, inside_functions=True)
        for importer, forbidden, why in RULES:
            if name == importer or name.startswith(importer + "."):
                bad = sorted(
                    i for i in imported if i.split(".")[0] in {f.split(".")[0] for f in forbidden} and i.startswith(forbidden)
                )
                if bad:
                    broken.append(f"{name} imports {bad}: {why}")
        # The core (everything in mail/ but its outer layers) knows nothing of HTTP.
        if name.startswith("mail.") and not name.startswith(CORE_EXEMPT):
            bad = sorted(i for i in imported if i.startswith(("mail.api", "rest_framework.")) or i == "rest_framework")
            if bad:
                broken.append(f"{name} imports {bad}: the core knows nothing of HTTP")
    assert broken == []


# Imported where first used, on purpose: modules whose import costs every process memory that only
# one role uses (Jinja2 for the API and the admin: the Celery workers never render a template,
# docs/benchmarks.md, issue 21). Each must import nothing of ours, so no cycle can hide there.
LOADED_ON_FIRST_USE = {"mail.templating.rendering": ["mail.templating.sandbox"]}


def test_no_function_local_imports_of_our_own_modules():
    hidden = {name: sorted(first_party(imports_of(name, path, inside_functions=True))) for name, path in MODULES.items()}
    assert {name: found for name, found in hidden.items() if found} == LOADED_ON_FIRST_USE
    leaves = {leaf for leaves in LOADED_ON_FIRST_USE.values() for leaf in leaves}
    assert {leaf: first_party(imports_of(leaf, MODULES[leaf])) for leaf in leaves} == dict.fromkeys(leaves, set())


@pytest.mark.parametrize("package", ["mail", "providers"])
def test_modules_are_short_enough_to_read_in_one_sitting(package):
    long = {
        name: n
        for name, path in MODULES.items()
        if name.split(".")[0] == package and (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_global_statements():
    found = [
        f"{name}:{node.lineno}"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Global)
    ]
    assert found == []


def test_nothing_cites_a_document_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    citing = re.compile(r"DESIGN(\.md)? ?§|DESIGN\.md|\.\./shared")
    found = [
        path
        for path in tracked
        if path != "tests/test_architecture.py"
        and (ROOT / path).is_file()
        and citing.search((ROOT / path).read_text(errors="ignore"))
    ]
    assert found == []
