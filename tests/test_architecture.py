"""The shape of the package, checked on its source (docs/architecture.md): the command line is a
leaf nothing imports, functions stay short, and only ``store`` names the files of a run directory."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "evalkit"
MAX_FUNCTION_LINES = 90
# Files of a run directory; a suite folder has a router.json too, so that name is not checked.
RUN_FILES = {"manifest.json", "results.jsonl", "summary.json", "diff.json", "judge.jsonl", "baseline.jsonl",
             "baseline_judge.jsonl", "pairwise.jsonl", "report.html", "summary.md", "junit.xml", "compare.html",
             "compare.md"}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def is_command_line(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).as_posix()
    return rel in ("cli.py", "__main__.py") or rel.startswith("commands/")


def imported(tree: ast.AST, path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` names (at any depth: imports inside functions count), absolute."""
    package = ".".join(["evalkit", *path.relative_to(PACKAGE).parent.parts])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def test_library_modules_never_import_the_command_line():
    offenders = []
    for path in modules():
        if is_command_line(path):
            continue
        for line, name in imported(ast.parse(path.read_text(encoding="utf-8")), path):
            if name in ("evalkit.cli", "evalkit.commands") or name.startswith(("evalkit.cli.", "evalkit.commands.")):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offenders, "library code must not import the command line:\n" + "\n".join(offenders)


def test_commands_do_not_import_the_cli_module():
    """cli imports every command module; a command importing cli back would close a cycle."""
    offenders = []
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        for line, name in imported(ast.parse(path.read_text(encoding="utf-8")), path):
            if name == "evalkit.cli" or name.startswith("evalkit.cli."):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_no_function_is_longer_than_90_lines():
    """Counted from the first line of the body, so a command's option declarations (its signature)
    do not count; nested functions count toward the function that holds them."""
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.body[0].lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "split these by concern:\n" + "\n".join(long)


def test_only_the_store_names_the_files_of_a_run_directory():
    named = []
    for path in modules():
        if path == PACKAGE / "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not named, "use evalkit.store.RunDir and its file-name constants:\n" + "\n".join(named)


def test_the_checks_catch_what_they_look_for(tmp_path: Path):
    """Positive control: each check finds a planted offender."""
    source = ("import evalkit.cli\nfrom ..commands import output\nfrom . import store\n"
              "def f():\n    from evalkit.commands.console import out\n    return 'judge.jsonl'\n")
    fake = PACKAGE / "run" / "planted.py"  # parsed, never written: the path only places it in the package
    names = [name for _, name in imported(ast.parse(source), fake)]
    assert "evalkit.cli" in names and "evalkit.commands.output" in names and "evalkit.run.store" in names
    assert "evalkit.commands.console" in names
    body = "def g():\n" + "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES + 1))
    (node,) = ast.parse(body).body
    assert node.end_lineno - node.body[0].lineno + 1 > MAX_FUNCTION_LINES
    assert any(isinstance(n, ast.Constant) and n.value in RUN_FILES for n in ast.walk(ast.parse(source)))


def _requirement_names(requirements: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip().lower().replace("_", "-") for req in requirements}


def test_every_third_party_import_is_declared_and_public():
    """A package evalkit imports is one pyproject.toml names (a dependency or an extra's), never
    reached through another package's dependencies; and no import names a private module of
    another package (``typer._click``)."""
    import sys
    import tomllib
    from importlib.metadata import packages_distributions

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared |= _requirement_names(extra)
    distributions = packages_distributions()
    undeclared, private = [], []
    for path in modules():
        for line, name in imported(ast.parse(path.read_text(encoding="utf-8")), path):
            top = name.split(".")[0]
            if not top or top == "evalkit" or top in sys.stdlib_module_names or top == "__future__":
                continue
            dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
            if not dists & declared:
                undeclared.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({', '.join(sorted(dists))})")
            if any(part.startswith("_") for part in name.split(".")[1:]):
                private.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not undeclared, "imported but not declared in pyproject.toml:\n" + "\n".join(undeclared)
    assert not private, "private modules of other packages:\n" + "\n".join(private)
