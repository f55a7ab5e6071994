"""LUCIR in FACIL's form (its approach/lucir.py: no imprinting, cosine heads with one shared scale,
old heads frozen, λ_base 5, no gradient clipping) and the IIL-CLSF variants, on FACIL's protocol
(configs/facil_common.py; no exemplars as the paper's runs, `:m2000` for some).

    python main.py --config configs/lucir_facil_cifar100.py:variant=sr --workdir runs/lucir_sr
variant = lucir | sr | bsr | br2 (methods/lucir.py)."""
from configs.facil_common import facil_config


def get_config(arg=None):
  c = facil_config('lucir', 'cifar100', arg, form='facil', lambda_base=5.0, margin=0.5, k=2)
  c.train.clip_norm = 0.0   # FACIL's LUCIR overrides train_epoch without clipping
  return c
