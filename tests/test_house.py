"""The house's rules that a reader relies on, checked on the source: no import cycle in the package, and
no engine function longer than a screen."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'cil_jax')
LONGEST_ENGINE_FUNCTION = 60   # lines, its signature and docstring included


def _modules() -> dict[str, str]:
  found = {}
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        module = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, '.')
        found[module.removesuffix('.__init__')] = path
  return found


def import_graph() -> dict[str, set[str]]:
  """module -> the package's modules it imports, at the top or inside a function alike (a lazy import
  that closes a cycle is still a cycle to a reader)."""
  modules = _modules()
  graph = {}
  for module, path in modules.items():
    deps = set()
    with open(path) as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        deps.update(a.name for a in node.names if a.name in modules)
      elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        for a in node.names:
          full = f'{node.module}.{a.name}'
          deps.add(full if full in modules else node.module)
    graph[module] = {d for d in deps if d in modules and d != module}
  return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []
  for root in graph:
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = len(index)
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = len(index)
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = []
        while True:
          member = stack.pop()
          on_stack.discard(member)
          component.append(member)
          if member == node:
            break
        if len(component) > 1:
          found.append(sorted(component))
  return found


def test_the_cycle_finder_finds_a_cycle():
  assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]
  assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycle_in_the_package():
  assert cycles(import_graph()) == []


def _functions(path):
  with open(path) as f:
    tree = ast.parse(f.read())
  for node in ast.walk(tree):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize('name', sorted(n for n in os.listdir(os.path.join(PACKAGE, 'engine')) if n.endswith('.py')))
def test_engine_functions_fit_a_screen(name):
  path = os.path.join(PACKAGE, 'engine', name)
  long = [f'{f} (line {line}: {n} lines)' for f, line, n in _functions(path) if n > LONGEST_ENGINE_FUNCTION]
  assert not long, f'engine/{name}: functions over {LONGEST_ENGINE_FUNCTION} lines: {long}'


# The package's parts from the top down, as README "Design" lists them: a module imports its own part or
# the parts below it, never one above (what the engine imports cannot import the engine back).
LAYERS = ('__main__', 'tools', 'engine', 'command_line', 'config_base', 'results', 'methods', 'input_pipeline',
          'models', 'errors', 'native_output')


def test_imports_only_point_down_the_layers():
  graph = import_graph()
  unplaced = {m.split('.')[1] for m in graph if '.' in m} - set(LAYERS)
  assert not unplaced, f'place these parts of the package in LAYERS (and README "Design"): {unplaced}'

  def layer(module):
    return LAYERS.index(module.split('.')[1]) if '.' in module else -1   # cil_jax itself: above all
  up = sorted(f'{m} -> {d}' for m, deps in graph.items() for d in deps if layer(d) < layer(m))
  assert not up, up
