"""PODNet on ImageNet-1K, the README command:

  python3 main.py --trainer podnet --lr 0.05 --batch-size 64 --base-classes 100 --step-size 100
      --debug 0 --nepochs 90 --memory-budget 20000

90 epochs, lr 0.05 with cosine annealing (per epoch), batch 64, a fresh SGD (momentum 0.9, wd 1e-4)
each task; local similarity classifier (10 proxies per class), no final ReLU; λ_c 8, λ_f 10; then
(t >= 1) 20 epochs of classifier-only fine-tuning on the balanced set at lr 0.01.
"""
from cil_jax.config_base import set_method
from configs.imagenet_common import imagenet_config, readme_schedule


def get_config(arg=None, dataset='imagenet'):
  c, smoke = imagenet_config(arg, dataset)
  set_method(c, 'podnet')
  # cosine annealing (the method's phases): no milestones
  readme_schedule(c, smoke, lr=0.05, epochs=90, milestones=(), batch_size=64, smoke_epochs=2, smoke_batch_size=8)
  if smoke:
    c.method.finetune_epochs = 1
  return c
