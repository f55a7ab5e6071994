"""podnet on CIFAR-100, ResNet-32, 10 tasks (see cifar100_common.py), with PODNet's optimiser: lr 0.05
cosine-annealed over the 100 epochs, batch 64, a fresh SGD each task; lsc head, no final ReLU."""
from configs.cifar100_common import cifar100_config
from configs.podnet_common import podnet_training


def get_config(arg=None):
  return podnet_training(cifar100_config('podnet', arg), arg)
