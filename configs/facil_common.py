"""FACIL's protocol (mmasana/FACIL, src/main_incremental.py with its defaults, as the IIL-CLSF /
RethinkSoftmax runs use it), shared by the lwf_* and lucir_facil configs.

- Tasks: FACIL's split of all classes (scenario.num_tasks, default 10; `:t5` / `:t20`; remainder to
  the first tasks; scenario.nc_first_task for a larger first task); class order = a seeded
  np.random.shuffle of 0..C-1 with the run seed (class_order 'facil', scenario.seed -1).
- 10 % of each class's training images held out for the run (FACIL's rule, the run seed); the
  patience schedule on their loss: lr 0.1, at most 200 epochs, lr /= 3 after 5 epochs without a lower
  validation loss (the best weights restored), stop under 1e-4; the phase ends with its best weights.
- SGD without momentum or weight decay, batch 64, clip_grad_norm_ 10000 (FACIL's LUCIR has none: its
  config sets 0). main_incremental.py passes these to every approach, so they override the approaches'
  own defaults. FACIL builds a fresh optimizer each task: LwF's and LUCIR's main phase has its own.
- Memory: none by default (FACIL's and the paper's runs); `:m<N>` keeps FACIL's ceil(N / seen) per
  class, untrimmed, herding re-selected after each task (memory.policy 'facil').
- CIFAR-100: FACIL's ResNet-32, its train transform (pad 4, RandomResizedCrop 32, flip) and
  normalisation (std 0.2009, 0.1984, 0.2023). ImageNet-100: ResNet-18, RandomResizedCrop 224 + flip,
  the first 100 ImageNet classes (FACIL's imagenet_subset with ImageNet's labels; `dataset.class_list`).
  Fashion-MNIST (offline): the small conv net, pad-crop-flip, the first 1000 training images of each
  class (900 train + 100 validation), at most 20 epochs per task, patience 2, stop under 1e-3, so the
  table of docs/results.md runs on a laptop CPU (`:smoke`: seconds).
Config arguments: t<N> tasks, m<N> memory, smoke, and method options as name=value (`:variant=bsr`).
"""
from cil_jax.config_base import base_config, parse_arg, set_method, shrink_to_smoke

DATASETS = {  # name -> (dataset.name, model.name, classes)
    'cifar100': ('cifar100', 'resnet32_cifar', 100),
    'imagenet100': ('imagenet100', 'resnet18', 100),
    'fashion_mnist': ('fashion_mnist', 'small_convnet', 10),
}


def facil_config(method: str, dataset: str, arg=None, **method_options):
  opts = parse_arg(arg)
  c = base_config()
  name, model, classes = DATASETS[dataset]
  c.dataset.name = name
  c.model.name = model
  c.scenario.num_tasks = opts['tasks'] or (5 if dataset == 'fashion_mnist' else 2 if opts['smoke'] else 10)
  c.scenario.class_order, c.scenario.seed = 'facil', -1
  c.scenario.validation = 0.1
  c.memory.size = opts['memory'] or 0
  c.memory.policy, c.memory.selection = 'facil', 'herding'
  set_method(c, method, **{**method_options, **opts['options']})
  t = c.train
  t.schedule, t.lr, t.epochs = 'patience', 0.1, 200
  t.lr_patience, t.lr_factor, t.lr_min = 5, 3.0, 1e-4
  t.milestones = ()
  t.momentum, t.weight_decay, t.clip_norm = 0.0, 0.0, 10000.0
  t.batch_size, t.replay_batch_size = 64, 0
  c.eval.batch_size = 256
  if dataset == 'imagenet100':   # FACIL's imagenet_subset read with ImageNet's own labels: classes 0-99
    c.dataset.class_list = 'podnet'
  if dataset == 'cifar100':
    c.dataset.augment = 'pad_rrc_flip'
    c.dataset.std = (0.2009, 0.1984, 0.2023)
  if dataset == 'fashion_mnist':   # the offline table: the first 1000 images of each class, shorter patience
    c.dataset.max_per_class = 1000
    t.epochs, t.lr_patience, t.lr_min = 20, 2, 1e-3
  if opts['smoke']:   # CIFAR-100 / ImageNet-100: 2 tasks, 11 + 1 held-out images per class, ImageNet-100 at 32 px
    shrink_to_smoke(c, max_per_class=40 if dataset == 'fashion_mnist' else 12, memory=opts['memory'] or 0,
                    batch_size=16, replay_batch_size=0, eval_batch_size=32)
    t.epochs, t.lr_patience = 3, 1
    if dataset == 'imagenet100':
      c.dataset.image_size = 32
  return c
