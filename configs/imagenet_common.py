"""The SS-IL README protocol on ImageNet-1K and Google Landmarks v2, shared by the <method>_imagenet.py
and <method>_landmarks.py configs.

ResNet-18 from scratch, T = 10, SGD momentum 0.9, coupled weight decay 1e-4. ImageNet-1K: base = step
= 100, M = 20000; `:t5` / `:t20` give base = step = 200 / 50, `:m5000` etc. the memory sizes of
Table 1. Landmarks (SS-IL-Official's `--dataset Google_Landmark_v2_1K / _10K`, the same commands):
`:1k` (M = 20000; Table 1: 5k / 10k / 20k) or `:10k` (a 10,000-way head, M = 60000; Table 1:
20k / 40k / 60k), no mean/std normalisation (sources: the reader).
"""
from cil_jax.config_base import SMOKE_TEST_PER_CLASS, base_config, classes_per_task, parse_arg, pick

DATASETS = {  # config dataset -> (dataset.name, classes, default memory, name in messages)
    'imagenet': ('imagenet', 1000, 20000, 'ImageNet-1K'),
    'landmarks_1k': ('landmarks_v2_1k', 1000, 20000, 'Landmarks-1K'),
    'landmarks_10k': ('landmarks_v2_10k', 10000, 60000, 'Landmarks-10K'),
}
LANDMARKS_ARGS = {'1k': 'landmarks_1k', '10k': 'landmarks_10k'}


def landmarks(get_config, arg):
  """A <method>_imagenet.py config on Landmarks: `1k` (default) or `10k` among the arguments."""
  size, rest = pick(arg, tuple(LANDMARKS_ARGS), '1k')
  odd = [p for p in (rest or '').split(',') if p.lower().rstrip('k').isdigit()]
  if odd:
    raise ValueError(f'config argument {odd[0]!r}: the Landmarks configs take 1k or 10k')
  return get_config(rest, LANDMARKS_ARGS[size])


def readme_schedule(c, smoke: bool, *, lr: float, epochs: int, milestones: tuple, batch_size: int,
                    smoke_epochs: int, smoke_batch_size: int, gamma: float = 0.1) -> None:
  """The schedule of a method's README command (--lr, --nepochs, --schedule, --gammas, --batch-size);
  its :smoke version trains `smoke_epochs` without milestones, in batches of `smoke_batch_size`."""
  t = c.train
  t.lr, t.epochs, t.milestones, t.gamma, t.batch_size = lr, epochs, milestones, gamma, batch_size
  if smoke:
    t.epochs, t.milestones, t.batch_size = smoke_epochs, (), smoke_batch_size


def imagenet_config(arg, dataset: str = 'imagenet'):
  opts = parse_arg(arg)
  if opts['options']:
    raise ValueError(f'the ImageNet and Landmarks configs take no method options as arguments (got '
                     f'{sorted(opts["options"])}); pass them as --config.method.<name>=<value>')
  name, classes, memory, title = DATASETS[dataset]
  c = base_config()
  c.dataset.name = name
  if dataset == 'imagenet':
    c.dataset.num_classes = 1000
  c.model.name = 'resnet18'
  c.scenario.seed = -1   # SS-IL-Official's --seed N also draws the class order: --config.seed=N does the same
  if not opts['smoke']:   # the smoke setting's 4 classes are split below
    c.scenario.base = c.scenario.step = classes_per_task(classes, opts['tasks'] or 10, title)
  c.memory.size = memory if opts['memory'] is None else opts['memory']
  c.eval.batch_size = 400
  c.log_every_steps = 50
  c.checkpoint.every_steps = 2000
  if opts['smoke']:  # the same file, tiny: for tests on a fixture folder in the dataset's own format
    c.dataset.num_classes = 4
    c.dataset.image_size = 32
    c.dataset.max_test_per_class = SMOKE_TEST_PER_CLASS
    c.scenario.base = c.scenario.step = classes_per_task(4, opts['tasks'] or 2, 'the 4-class smoke setting')
    c.memory.size = 8 if opts['memory'] is None else opts['memory']
    c.eval.batch_size = 8
    c.log_every_steps = 1
    c.checkpoint.every_steps = 0
  return c, opts['smoke']
