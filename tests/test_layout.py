"""The package's shape: which stage may import which (parsed from the source, not imported), no circles, and
the command line's parser loads no torch.

    .venv/bin/pytest tests/test_layout.py -q
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "audiogen"

# (importer prefix, forbidden prefix): generation/ and lm/ never import training/ or evaluation/, lm/ never
# imports generation/, codec/ never imports training/; and nothing below the CLI imports the CLI.
FORBIDDEN = [
    ("audiogen.generation", "audiogen.training"), ("audiogen.generation", "audiogen.evaluation"),
    ("audiogen.lm", "audiogen.training"), ("audiogen.lm", "audiogen.evaluation"),
    ("audiogen.lm", "audiogen.generation"), ("audiogen.codec", "audiogen.training"),
    ("audiogen.plots", "audiogen.evaluation"), ("audiogen.runtime", "audiogen.training"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str) -> set[str]:
    """Every audiogen module `name` imports, at the top or inside functions (not under TYPE_CHECKING)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("audiogen"))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if not target.startswith("audiogen"):
                    continue
                found.add(target)
                for alias in child.names:  # `from . import patterns`: the submodule itself
                    if f"{target}.{alias.name}" in MODULES:
                        found.add(f"{target}.{alias.name}")
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize(("importer", "forbidden"), FORBIDDEN)
def test_import_directions(importer: str, forbidden: str) -> None:
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if _under(m, importer)
                 for t in targets if _under(t, forbidden))
    assert not bad, bad
    assert any(_under(m, importer) for m in MODULES)  # the rule is about modules that exist


def test_nothing_imports_the_cli() -> None:
    bad = sorted(f"{m} imports {t}" for m, targets in GRAPH.items() if not _under(m, "audiogen.cli")
                 and m != "audiogen.__main__" for t in targets if _under(t, "audiogen.cli"))
    assert not bad, bad


def test_no_import_circles() -> None:
    """No cycle among modules (a package's own `__init__` re-exports count as edges too)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            # importing a package's submodule runs the package's __init__ first: not an edge back to it
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            walk(name)


def test_the_graph_sees_imports() -> None:
    """The parser finds real edges, lazy ones included (else every rule above would pass vacuously)."""
    assert "audiogen.lm.decode_cpu" in GRAPH["audiogen.lm.model"]
    assert "audiogen.lm.patterns" in GRAPH["audiogen.lm.model"]
    assert "audiogen.generation.engine" in GRAPH["audiogen.cli.common"]  # imported inside a function


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_needs_no_torch() -> None:
    """`audiogen --help` and every `audiogen CMD --help` parse without importing torch."""
    out = _run("""
import contextlib, io, sys
import audiogen.cli as cli
parser = cli.build_parser()
commands = [[], ["codec"], ["codec", "encode"], ["codec", "decode"], ["codec", "eval"]]
commands += [[c] for c in parser._subparsers._group_actions[0].choices if c != "codec"]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()) as text:
        try:
            parser.parse_args(argv + ["--help"])
        except SystemExit:
            pass
    assert "usage: audiogen" in text.getvalue(), argv
print(len(commands), "torch" in sys.modules)
""")
    count, torch_loaded = out.split()
    assert int(count) >= 15 and torch_loaded == "False"


def test_lazy_exports() -> None:
    out = _run("""
import sys
import audiogen
before = "torch" in sys.modules
from audiogen import AudioGen, AudiogenError, SamplingConfig, load_codec
print(before, AudioGen.__module__, SamplingConfig().top_k, callable(load_codec))
""")
    assert out.split() == ["False", "audiogen.generation.engine", "250", "True"]


def test_a_spectrogram_needs_matplotlib_alone() -> None:
    out = _run("import sys, audiogen.plots; print('mir_eval' in sys.modules, 'audiogen.evaluation' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_the_demo_needs_no_extras() -> None:
    """`make demo` installs the base dependencies only: the demo's modules import no dev or eval extra."""
    out = _run("""
import sys
import audiogen.cli.generate, audiogen.generation.demo, audiogen.generation.engine, audiogen.plots
print(sorted(m for m in ("mir_eval", "music21", "transformers", "pytest") if m in sys.modules))
""")
    assert out.strip() == "[]"
