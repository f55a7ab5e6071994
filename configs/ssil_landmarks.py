"""configs/ssil_imagenet.py on Google Landmarks v2 (SS-IL-Official's --dataset Google_Landmark_v2_1K / _10K):

    python main.py --config configs/ssil_landmarks.py:10k,m40000 --config.dataset.root=GLDV2 --workdir runs/ssil_lm10k
`:1k` (default) or `:10k`, with the ImageNet config's `:t5` / `:t20`, `:m<N>` (configs/imagenet_common.py)."""
from configs import ssil_imagenet
from configs.imagenet_common import landmarks


def get_config(arg=None):
  return landmarks(ssil_imagenet.get_config, arg)
