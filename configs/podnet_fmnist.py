"""podnet on Split Fashion-MNIST, the protocol shared by all methods (see fmnist_common.py), with
PODNet's optimiser: lr 0.05 cosine-annealed over the task's epochs, batch 64, a fresh SGD each task;
lsc head, no final ReLU; then (t >= 1) 20 epochs of classifier fine-tuning on the balanced set."""
from configs.fmnist_common import fmnist_config
from configs.podnet_common import podnet_training


def get_config(arg=None):
  return podnet_training(fmnist_config('podnet', arg), arg)
