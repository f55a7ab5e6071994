"""The offline default: SS-IL on Split Fashion-MNIST (5 tasks of 2 classes, 2000 exemplars), the
protocol of configs/fmnist_common.py; its smoke version keeps 40 exemplars.

    python main.py                        # this file
    python main.py --config configs/default.py:smoke
"""
from configs.fmnist_common import fmnist_config


def get_config(arg=None):
  return fmnist_config('ssil', arg, smoke_memory=40)
