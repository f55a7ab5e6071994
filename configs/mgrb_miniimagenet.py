"""MGRB on miniImageNet (configs/mgrb_common.py, methods/mgrb.py).

    python main.py --config configs/mgrb_miniimagenet.py:wordnet --workdir runs/mgrb_miniimagenet
50/10, -beta 50: `:wordnet` (WordNet hypernym tree) or `:vis` (K = 10)."""
from configs.mgrb_common import mgrb_config


def get_config(arg=None):
  return mgrb_config('miniimagenet', arg, default_hierarchy='wordnet')
