"""Method registry. A method is a module cil_jax/methods/<name>.py that declares, as literal dicts at
its top, what the config checks need:
  OPTIONS   its config options (`config.method`) with their defaults, each documented there
  CHOICES   option -> the values it may take, for options that name one of a few forms (optional)
  REQUIRES  what it needs from the rest of the config, e.g. {'model.head': 'cosine'} (optional)
and `make(config) -> Method`. The registry reads the declarations from the file's syntax tree, as
setuptools reads a package's `__version__`, without importing the module (which imports JAX): so
configs load and are validated, and a wrong option is refused, before JAX or TensorFlow loads.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import os

DECLARED = ('OPTIONS', 'CHOICES', 'REQUIRES')
_FOLDER = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Declared:
  """A method's declarations (shared: copy before changing one)."""
  options: dict
  choices: dict
  requires: dict


def _declarations(path: str) -> dict:
  """The literal values of the module's top-level OPTIONS / CHOICES / REQUIRES assignments."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  found = {}
  for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
        and node.targets[0].id in DECLARED:
      found[node.targets[0].id] = ast.literal_eval(node.value)
  return found


@functools.cache
def _all() -> dict[str, Declared]:
  out = {}
  for file in sorted(os.listdir(_FOLDER)):
    if file.endswith('.py') and file != '__init__.py':
      found = _declarations(os.path.join(_FOLDER, file))
      if 'OPTIONS' in found:   # the modules that declare no options are the methods' shared pieces
        out[file[:-3]] = Declared(found['OPTIONS'], found.get('CHOICES', {}), found.get('REQUIRES', {}))
  return out


def names() -> tuple[str, ...]:
  """Every method's name, sorted."""
  return tuple(_all())


def declared(name: str) -> Declared:
  """What method `name` declares (the name is one of names())."""
  return _all()[name]


def get(name: str):
  """The module of method `name` (cil_jax/methods/<name>.py; the name was checked with the config)."""
  return importlib.import_module(f'cil_jax.methods.{name}')
