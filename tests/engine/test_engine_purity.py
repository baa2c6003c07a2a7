"""The engine is pure Python: it never imports Django, and nothing in it can unpickle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import workflows_app.engine

ENGINE_DIR = Path(workflows_app.engine.__file__).parent
REPO_ROOT = ENGINE_DIR.parent.parent

# Modules that can turn bytes into arbitrary objects, or code to run.
FORBIDDEN_MODULES = {"django", "pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve",
                     "marshal", "jsonpickle", "importlib", "pydoc"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__", "compile"}


def engine_modules() -> list[Path]:
    return sorted(ENGINE_DIR.rglob("*.py"))


def forbidden_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every import of a forbidden module and call of a forbidden builtin in ``source``."""
    problems = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            imported = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in FORBIDDEN_CALLS:
            problems.append(f"{filename}:{node.lineno} calls {node.func.id}()")
            continue
        else:
            continue
        problems += [f"{filename}:{node.lineno} imports {name}" for name in imported
                     if name.split(".")[0] in FORBIDDEN_MODULES]
    return problems


def test_importing_the_engine_does_not_import_django():
    code = ("import sys, workflows_app.engine as engine; "
            "assert engine.WorkflowBuilder and engine.FileCheckpointStorage; "
            "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=60, env=env)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


def test_the_scan_covers_every_engine_module():
    names = {path.stem for path in engine_modules()}
    assert {"encoding", "checkpoints", "storage", "runner", "workflow", "builder"} <= names


def test_no_engine_module_imports_django_or_pickle_or_evaluates_code():
    problems = []
    for path in engine_modules():
        problems += forbidden_uses(path.read_text(), path.name)
    assert problems == []


def test_the_scan_notices_forbidden_imports_and_calls():
    sample = ("import json\nfrom django.conf import settings\nimport pickle as p\n"
              "from . import encoding\nx = eval('1')\n")
    assert forbidden_uses(sample) == ["<source>:2 imports django.conf", "<source>:3 imports pickle",
                                      "<source>:5 calls eval()"]
