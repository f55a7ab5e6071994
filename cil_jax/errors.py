"""The one line a person can act on, for every error that is not a bug. Light: the commands use it
before JAX loads; the run's log (run_log.py) records the same line."""
from __future__ import annotations

import errno


def error_line(e: BaseException) -> str | None:
  """'error: ...' naming the fix; None for a bug (shown with its traceback)."""
  from cil_jax import workdir as workdir_lib
  from cil_jax.input_pipeline.sources import DataError
  from cil_jax.input_pipeline.streams import MissingTensorFlow
  from cil_jax.scenario import ScenarioError
  chain, seen = e, set()
  while chain is not None and id(chain) not in seen:  # a full disk may surface wrapped by Orbax
    seen.add(id(chain))
    if isinstance(chain, OSError) and chain.errno == errno.ENOSPC:
      return (f'error: no space left on the device ({chain.filename or "writing the workdir"}); free some space, '
              'then rerun the same command to resume from the last checkpoint')
    chain = chain.__cause__ or chain.__context__
  if isinstance(e, (DataError, ScenarioError, workdir_lib.WorkdirError, FloatingPointError, MissingTensorFlow)) \
      or type(e) is ValueError:
    return f'error: {e}'
  return None
