"""project.yml is the map: every command's `deps` name every project file its steps read, so a
change reruns exactly the steps it affects (Weasel skips a step whose deps are unchanged).

What a step reads is found from its script lines: the step script itself, the package modules it
imports (transitively, relative imports included), the configs named on the command line, and the
modules behind every registered function those configs name (through pyproject.toml's entry
points). A module counts as covered when it, or a folder above it, is a dep.
"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

PACKAGE = "clin_distill"


def module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """clin_distill modules a file imports, relative imports resolved; parent packages included."""
    rel = path.relative_to(ROOT).with_suffix("")
    here = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    if path.name == "__init__.py":
        here = list(rel.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == PACKAGE:
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in found if module_file(m)}


def entry_point_modules() -> dict[str, str]:
    """Registered name (factory or function) -> the module that registers it."""
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    return {name: target.split(":")[0] for group in eps.values() for name, target in group.items()}


def config_modules(cfg: Path) -> set[str]:
    """Modules behind the registered names a config uses (`@misc = "..."`, `factory = "..."`)."""
    registered = entry_point_modules()
    names = re.findall(r'(?:@\w+|factory)\s*=\s*"([^"]+)"', cfg.read_text())
    return {registered[n] for n in names if n in registered}


def closure(modules: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(imported_modules(module_file(m)) - seen)
    return seen


def path_args(command: dict) -> list[str]:
    """Arguments of a command's script lines that name project paths (inputs or outputs)."""
    dirs = set(PROJECT["directories"])
    args = [arg for line in command["script"] for arg in shlex.split(line)[1:]]
    args = [a.split("=", 1)[1] if re.match(r"^\w+=", a) else a for a in args]  # --model name=path
    return [a for a in args if not a.startswith("-") and ("/" in a or a in dirs)]


def pipeline_modules(arg: str, seen: set[str] | None = None) -> set[str]:
    """Modules whose registered functions run inside a trained or assembled pipeline that a step
    loads (an argument under training/ or packages/): those its producing step's configs name,
    followed back through the pipelines that step loads in turn."""
    seen = set() if seen is None else seen
    if arg in seen or not arg.startswith(("training/", "packages/")):
        return set()
    seen.add(arg)
    modules: set[str] = set()
    for producer in PROJECT["commands"]:
        if any(arg == o or arg.startswith(o.split("$")[0]) for o in producer.get("outputs", [])):
            for parg in path_args(producer):
                if parg.endswith(".cfg"):
                    modules |= config_modules(ROOT / parg)
                modules |= pipeline_modules(parg, seen)
    return modules


def files_read(command: dict) -> set[Path]:
    """Project code and configs a command's script lines read, and the code that runs inside the
    pipelines it loads."""
    files: set[Path] = set()
    modules: set[str] = set()
    for arg in path_args(command):
        modules |= pipeline_modules(arg)
        path = ROOT / arg
        if path.exists():
            if path.suffix == ".py" and path.is_relative_to(ROOT / "scripts"):
                files.add(path)
                modules |= imported_modules(path)
            elif path.suffix == ".cfg":
                files.add(path)
                modules |= config_modules(path)
            elif path.is_dir() and path.is_relative_to(ROOT / "configs"):
                files.add(path)
                for cfg in path.rglob("*.cfg"):
                    modules |= config_modules(cfg)
    return files | {module_file(m) for m in closure(modules)}


def is_trivial(path: Path) -> bool:
    """An `__init__.py` with nothing but a docstring and assignments runs no project code."""
    return path.name == "__init__.py" and not any(
        isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(ast.parse(path.read_text()))
    )


def missing_deps(command: dict) -> list[str]:
    """Files a command reads that no dep covers: code, configs, and data paths on its command line
    that are neither deps (or under one, or above one) nor outputs."""
    deps = [ROOT / d for d in command.get("deps", [])]
    outputs = [ROOT / o for o in command.get("outputs", [])]
    missing = set()
    for path in files_read(command):
        if not is_trivial(path) and not any(path == d or path.is_relative_to(d) for d in deps):
            missing.add(str(path.relative_to(ROOT)))
    for arg in path_args(command):
        path = ROOT / arg
        related = [p for p in deps + outputs if path == p or path.is_relative_to(p) or p.is_relative_to(path)]
        if not related:
            missing.add(arg)
    return sorted(missing)


PROJECT = yaml.safe_load((ROOT / "project.yml").read_text())


@pytest.mark.parametrize("command", PROJECT["commands"], ids=lambda c: c["name"])
def test_every_file_a_step_reads_is_a_dep(command):
    assert missing_deps(command) == [], f"{command['name']}: add to deps"


def test_the_walk_finds_what_a_step_reads():
    """The check itself: a step that lost a dep is caught (here: evaluate without scoring.py)."""
    evaluate = next(c for c in PROJECT["commands"] if c["name"] == "evaluate")
    trimmed = {**evaluate, "deps": [d for d in evaluate["deps"] if d != "clin_distill/scoring.py"]}
    assert "clin_distill/scoring.py" in missing_deps(trimmed)
    teachers = next(c for c in PROJECT["commands"] if c["name"] == "teachers")
    read = {str(p.relative_to(ROOT)) for p in files_read(teachers)}
    # the configs' registered factories lead to the modules that define them
    assert {"clin_distill/teachers/ontology.py", "clin_distill/teachers/abbreviations.py"} <= read


def test_generated_files_never_go_to_assets():
    for command in PROJECT["commands"]:
        if command["name"] == "assets":
            continue
        for out in command.get("outputs", []):
            assert not out.startswith("assets/"), f"{command['name']} writes {out} into assets/"
