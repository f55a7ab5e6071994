"""LUCIR in FACIL's form (its approach/lucir.py: no imprinting, cosine heads with one shared scale,
old heads frozen, λ_base 5, no gradient clipping) and the IIL-CLSF variants, on FACIL's protocol
(configs/facil_common.py; no exemplars as the paper's runs, `:m2000` for some).

    python main.py --config configs/lucir_facil.py:cifar100,variant=sr --workdir runs/lucir_sr
The dataset: `cifar100` (default), `imagenet100` or `fmnist`; variant = lucir | sr | bsr | br2
(methods/lucir.py); with FACIL's `:t5` / `:t20` tasks, `:m<N>` exemplars, `:smoke`."""
from cil_jax.config_base import pick
from configs.facil_common import facil_config

DATASETS = {'cifar100': 'cifar100', 'imagenet100': 'imagenet100', 'fmnist': 'fashion_mnist'}  # argument -> dataset


def get_config(arg=None):
  dataset, rest = pick(arg, tuple(DATASETS), 'cifar100')
  c = facil_config('lucir', DATASETS[dataset], rest, form='facil', lambda_base=5.0, margin=0.5, k=2)
  c.train.clip_norm = 0.0   # FACIL's LUCIR overrides train_epoch without clipping
  return c
