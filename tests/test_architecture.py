"""The shape of the package, checked: imports point down the layers, no cycles, no private names across modules, small modules.

The layers, from the bottom up (a module may import from its own layer's package and from any layer below it):

| layer | package or module |
|---|---|
| foundation | `core`, `config`, `checkpoint` |
| data | `segcourse.data` |
| models | `segcourse.models` |
| losses, metrics | `segcourse.losses`, `segcourse.metrics` (neither imports the other) |
| inference | `segcourse.inference` |
| training | `segcourse.training` |
| evaluation, uncertainty, robustness | `segcourse.evaluation`, `segcourse.uncertainty`, `segcourse.robustness` (none imports another) |
| course | `segcourse.course` |
| command line | `cli`, `__main__` |
"""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1]/'segcourse'
RANK = {'core': 0, 'config': 0.1, 'checkpoint': 0.2, 'data': 1, 'models': 2, 'losses': 3, 'metrics': 3, 'inference': 4,
        'training': 5, 'evaluation': 6, 'uncertainty': 6, 'robustness': 6, 'course': 7, 'cli': 8, '__main__': 8.1}
MAX_LINES = 330  # "about 300": a module longer than this holds two ideas

def modules() -> dict:
    "Dotted name -> path of every module of the package (nbdev's `_modidx` aside)."
    out = {}
    for p in sorted(PKG.rglob('*.py')):
        if p.name == '_modidx.py': continue
        parts = p.relative_to(PKG.parent).with_suffix('').parts
        out['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = p
    return out

def _resolve(module:str, node:ast.ImportFrom, is_package:bool) -> str:
    if not node.level: return node.module or ''
    base = module.split('.') if is_package else module.split('.')[:-1]
    base = base[:len(base) - node.level + 1]
    return '.'.join(base + ([node.module] if node.module else []))

def imports(name:str, path:Path) -> list:
    "`(imported module, [names])` of every segcourse import in the module, at any depth (lazy imports count too)."
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split('.')[0] == 'segcourse']
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, node, path.name == '__init__.py')
            if target.split('.')[0] != 'segcourse': continue
            subs = {f'{target}.{a.name}' for a in node.names} & set(modules())
            out += [(s, []) for s in subs]  # `from segcourse.metrics import distance` imports a module
            out.append((target, [a.name for a in node.names if f'{target}.{a.name}' not in subs]))
    return out

def layer(module:str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else 'segcourse'

MODULES = modules()

@pytest.mark.parametrize('name', list(MODULES))
def test_imports_point_down(name):
    if name == 'segcourse': return
    up = [(t, layer(t)) for t, _ in imports(name, MODULES[name])
          if t != 'segcourse' and layer(t) != layer(name) and RANK[layer(t)] >= RANK[layer(name)]]
    assert not up, f"{name} ({layer(name)}) imports from its own level or above: {up}"

@pytest.mark.parametrize('name', list(MODULES))
def test_no_private_names_cross_modules(name):
    private = [(t, n) for t, names in imports(name, MODULES[name]) for n in names if n.startswith('_') and n != '__version__']
    assert not private, f"{name} imports private names of other modules: {private}; make them public or move the code"

def test_no_import_cycles():
    graph = {n: {t for t, _ in imports(n, p) if t in MODULES and t != n} for n, p in MODULES.items()}
    # a package's __init__ re-exports its modules: an edge from a module to its own package is not a cycle through it
    for n in graph: graph[n] = {t for t in graph[n] if not n.startswith(t + '.')}
    state, stack = {}, []
    def visit(n):
        state[n] = 'open'; stack.append(n)
        for t in sorted(graph[n]):
            if state.get(t) == 'open': raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(t):] + [t])}")
            if t not in state: visit(t)
        state[n] = 'done'; stack.pop()
    for n in sorted(graph):
        if n not in state: visit(n)

@pytest.mark.parametrize('name', list(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it into two ideas"

def test_every_layer_is_known():
    assert {layer(n) for n in MODULES} - {'segcourse'} <= set(RANK), sorted({layer(n) for n in MODULES} - set(RANK))
