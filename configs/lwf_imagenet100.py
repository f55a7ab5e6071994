"""LwF and the IIL-CLSF variants (methods/lwf.py) on FACIL's protocol (configs/facil_common.py).

    python main.py --config configs/lwf_imagenet100.py:variant=bsr --workdir runs/lwf_bsr
variant = lwf | s | sr | br | br2 | bsr; `:t5` / `:t20` tasks, `:m2000` exemplars, `:smoke`."""
from configs.facil_common import facil_config


def get_config(arg=None):
  return facil_config('lwf', 'imagenet100', arg)
