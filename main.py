"""Runs (or resumes) a class-incremental experiment.

  python main.py                                                  # configs/default.py
  python main.py --config configs/ssil_imagenet.py:t5 --workdir runs/ssil_t5 --config.dataset.root=/data/imagenet
  python main.py ... (same --workdir again)                       # resumes where it stopped
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file('config', 'configs/default.py', 'Experiment config file (file.py[:arg]).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, results and TensorBoard logs go '
                    '(default: runs/<config name>).')
flags.DEFINE_bool('distributed', False, 'Call jax.distributed.initialize() (multi-host; the '
                  'coordinator is taken from the environment, e.g. SLURM or TPU pods).')
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and TF log every checkpoint step at INFO
  from cil_jax import config_base
  config = FLAGS.config
  config_base.validate(config)  # names the valid choices before anything heavy is imported
  import jax
  if FLAGS.distributed:
    jax.distributed.initialize()
  from cil_jax import train
  workdir = FLAGS.workdir or os.path.join(
      'runs', os.path.splitext(os.path.basename(FLAGS['config'].config_filename))[0])
  try:
    train.train_and_evaluate(config, workdir)
  except (train.Preempted,):
    sys.exit(143)
  except (ValueError, RuntimeError) as e:
    from cil_jax.input_pipeline.sources import DataError
    from cil_jax.scenario import ScenarioError
    if isinstance(e, (DataError, ScenarioError)) or type(e) is ValueError:
      sys.exit(f'error: {e}')
    raise


if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  app.run(main)
