"""The `cil-jax` command: one entry point with a sub-command per tool, as `tfds build` or `git log`.

  cil-jax train --config ssil_fmnist              run or resume an experiment (= python main.py)
  cil-jax report runs/*                           tables and a plot from finished workdirs
  cil-jax data check --config ssil_imagenet ...   checks a dataset before a run reads it
  cil-jax benchmark --model resnet18              times the train step or the input pipeline
  cil-jax launch --processes 2 -- train ...       one run as several cooperating JAX processes

`cil-jax <command> --help` tells more. `python -m cil_jax <command>` is the same command where the
console script is not installed (cil_jax/__main__.py).
"""
from __future__ import annotations

import importlib
import sys

# command -> (module, one line); modules load on use: the light commands stay light
COMMANDS = {
    'train': ('cil_jax.tools.train_command', 'run or resume an experiment'),
    'report': ('cil_jax.tools.report', 'tables and a plot from finished workdirs'),
    'data': ('cil_jax.tools.data_check', 'check a dataset (data check --config ...)'),
    'benchmark': ('cil_jax.tools.benchmark', 'time the train step or the input pipeline'),
    'launch': ('cil_jax.tools.launch', 'one run as several cooperating JAX processes'),
}


def usage(prog: str) -> str:
  lines = [f'usage: {prog} <command> [options]', '', 'commands:']
  lines += [f'  {name:<10} {text}' for name, (_, text) in COMMANDS.items()]
  return '\n'.join(lines + ['', f'`{prog} <command> --help` tells more.'])


def main(argv: list[str] | None = None, prog: str = 'cil-jax') -> int:
  """`prog`: the command's name in help and usage texts (`python -m cil_jax` runs it as that)."""
  argv = sys.argv[1:] if argv is None else argv
  if not argv or argv[0] in ('-h', '--help', 'help'):
    print(usage(prog))
    return 0
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    import difflib
    close = difflib.get_close_matches(name, COMMANDS, n=1)
    print(f"error: unknown command {name!r}; {f'did you mean {close[0]}? ' if close else ''}"
          f"the commands are {', '.join(COMMANDS)}", file=sys.stderr)
    return 2
  module = importlib.import_module(COMMANDS[name][0])
  prog = f'{prog} {name}'
  if name == 'train':
    module.run([prog] + rest)   # absl's app: exits itself
    return 0
  if name == 'data':
    return module.main([prog] + rest, prog=prog)
  result = module.main(rest, prog=prog)
  return result if isinstance(result, int) else 0
