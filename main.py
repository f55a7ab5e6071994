"""Runs (or resumes) a class-incremental experiment: the same as `cil-jax train` (cil_jax/tools/train_command.py),
for a clone that is not installed.

  python main.py                                                  # configs/default.py
  python main.py --config configs/ssil_imagenet.py:t5 --workdir runs/ssil_t5 --config.dataset.root=/data/imagenet
"""
import os
import sys

if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  from cil_jax.tools import train_command
  train_command.run(sys.argv)
