"""MGRB's protocol (CIL-MGRB's README commands and util.get_trainparameter), shared by the mgrb_* configs.

- Class order: a seeded shuffle with seed 1993 (CIFAR-10: 4,2,7,6,0,3,5,8,9,1); n base classes, then m
  per phase (the README's -n / -m; a config argument `n/m`, e.g. `:vis,20/20`).
- Memory fixed per class: 20 (CIFAR-10 200) = 2 (20) balanced images + 18 (180) exemplars, each class's
  first images in file order; the reference's -k is ignored there, and has no counterpart here.
- AdamW lr 1e-3, weight decay 0.05, batch 128; stage 1 with one epoch of linear warm-up for the
  backbone, x0.1 at the reference's milestones (each takes effect one epoch later, as etrain.py steps
  MultiStepLR); stage 2 (head only, balanced set): 40 epochs (CIFAR) or 30, milestone 15.
- Train transform: the reference's RandomCrop(32, 4) + flip + RandomRotation(15); miniImageNet flip +
  RandomRotation(15); ImageNet-100 RandomResizedCrop(224) + flip + RandomRotation(15). Those two
  loaders also augment the balanced set (stage 2 and the visual hierarchy's features).
- ImageNet-100: LUCIR's 100 classes, learned in CIL-MGRB's twice-shuffled order (see below).

Config arguments, comma-separated: the hierarchy (ont | sem: the dataset's; vis: visual KMeans;
wordnet; none: no L_MG), the split `n/m`, `smoke`, and method options as name=value (`:vis,clusters=10`).
"""
import numpy as np

from cil_jax.config_base import base_config, parse_arg, set_method, shrink_to_smoke

# dataset -> settings of util.get_trainparameter and the README commands
DATASETS = {
    'cifar100': dict(model='resnet34_cifar', split=(10, 10), epochs=250, milestones=(70, 140, 210), stage2=40,
                     memory=20, balanced=2, beta=20.0, dscale=0.1, mg_scale=1.0, clusters=5),
    'cifar10': dict(model='resnet34_cifar', split=(5, 1), epochs=200, milestones=(70, 140, 210), stage2=40,
                    memory=200, balanced=20, beta=20.0, dscale=1.0, mg_scale=0.5, clusters=2),
    'miniimagenet': dict(model='resnet18_cifar', split=(50, 10), epochs=160, milestones=(100, 120), stage2=30,
                         memory=20, balanced=2, beta=50.0, dscale=1.0, mg_scale=1.0, clusters=10),
    # no README command for ImageNet-100: β, dscale and K are miniImageNet's
    'imagenet100': dict(model='resnet18_cifar', split=(50, 10), epochs=120, milestones=(30, 60, 90), stage2=30,
                        memory=20, balanced=2, beta=50.0, dscale=1.0, mg_scale=1.0, clusters=10),
    # the offline stand-in for MGRB's CIFAR-10 protocol (docs/results.md): the first 2000 training images
    # of each class (1800 train + 200 memory), the small conv net, 8 + 10 epochs
    'fashion_mnist': dict(model='small_convnet', split=(5, 1), epochs=8, milestones=(5,), stage2=10,
                          memory=200, balanced=20, beta=20.0, dscale=1.0, mg_scale=0.5, clusters=2),
}
HIERARCHY_ARGS = {'ont': 'dataset', 'sem': 'dataset', 'vis': 'visual', 'wordnet': 'wordnet', 'none': 'none'}
# :smoke without a split n/m: two phases (each phase adds evaluations, checkpoints and a stage 2)
SMOKE_SPLITS = {'cifar100': (50, 50), 'cifar10': (5, 5), 'miniimagenet': (50, 50), 'imagenet100': (50, 50)}

# CIFAR-10 has no coarse labels; the reference clusters word vectors of the class names into 2 groups
# (not available offline): animals / vehicles here. Fashion-MNIST: tops / footwear / the rest.
CIFAR10_GROUPS = (1, 1, 0, 0, 0, 0, 0, 0, 1, 1)   # airplane automobile | bird cat deer dog frog horse | ship truck
FASHION_MNIST_GROUPS = (0, 2, 0, 2, 0, 1, 0, 1, 2, 1)  # T-shirt pullover coat shirt | sandal sneaker boot | rest


def mgrb_config(dataset: str, arg=None, default_hierarchy: str = 'ont'):
  parts = [p.strip() for p in (arg or '').split(',') if p.strip()]
  words = [p for p in parts if p in HIERARCHY_ARGS]
  splits = [p for p in parts if '/' in p and all(x.isdigit() for x in p.split('/'))]
  if len(words) > 1 or len(splits) > 1:
    raise ValueError(f'config argument {arg!r}: give one hierarchy ({" | ".join(HIERARCHY_ARGS)}) and at most one '
                     'split n/m')
  rest = [p for p in parts if p not in words and p not in splits]
  for p in rest:
    if p != 'smoke' and '=' not in p and not (p[0] in 'tm' and p[1:].isdigit()):
      raise ValueError(f'config argument {p!r} is unknown; MGRB configs take a hierarchy ({" | ".join(HIERARCHY_ARGS)}), '
                       'a split n/m, smoke and method options as name=value, comma-separated (e.g. ":vis,20/20")')
  opts = parse_arg(','.join(rest))
  if opts['tasks'] is not None or opts['memory'] is not None:
    raise ValueError('MGRB configs take the split as n/m (e.g. 20/20) and a fixed per-class memory; for another '
                     'memory set --config.memory.size=<per class> (and method.balanced_per_class)')
  d = DATASETS[dataset]
  hierarchy = HIERARCHY_ARGS[words[0] if words else default_hierarchy]
  default_split = SMOKE_SPLITS.get(dataset, d['split']) if opts['smoke'] else d['split']
  n, m = (int(x) for x in splits[0].split('/')) if splits else default_split
  c = base_config()
  c.dataset.name = dataset
  c.model.name = d['model']
  c.scenario.base, c.scenario.step = n, m
  c.scenario.class_order, c.scenario.seed = 'facil', 1993
  c.memory.size = d['memory']
  options = dict(hierarchy=hierarchy, beta=d['beta'], dscale=d['dscale'], mg_scale=d['mg_scale'],
                 clusters=d['clusters'], balanced_per_class=d['balanced'], stage2_epochs=d['stage2'])
  if dataset in ('cifar10', 'fashion_mnist') and hierarchy == 'dataset':
    options['coarse_groups'] = CIFAR10_GROUPS if dataset == 'cifar10' else FASHION_MNIST_GROUPS
  if dataset == 'fashion_mnist':
    options['stage2_milestones'] = (5,)
  if dataset in ('miniimagenet', 'imagenet100'):
    options['balanced_augment'] = True   # their loaders augment the balanced set (M11)
  if dataset == 'miniimagenet':
    options['cb_new_count'] = 500      # cal_RB.py's nominal count, whatever the reader's split
  if dataset == 'imagenet100':
    options['cb_new_count'] = 1300
  set_method(c, 'mgrb', **{**options, **opts['options']})
  t = c.train
  t.lr, t.weight_decay, t.gamma = 1e-3, 0.05, 0.1
  t.epochs, t.milestones = d['epochs'], d['milestones']
  t.batch_size, t.replay_batch_size = 128, 0
  c.eval.batch_size = 100
  if dataset in ('cifar10', 'cifar100', 'fashion_mnist'):
    c.dataset.augment = 'crop_flip_rotate'
  if dataset in ('miniimagenet', 'imagenet100'):   # their loaders' transforms
    c.dataset.augment = 'flip_rotate' if dataset == 'miniimagenet' else 'imagenet_rotate'
  if dataset == 'imagenet100':
    # CIL-MGRB's wnids.txt lists LUCIR's classes in LUCIR's learning order, and divideimagenet100.py
    # shuffles that list again with seed 1993: class j learned is sorted[order[order[j]]] (LUCIR's list;
    # with another dataset.class_list pass --config.scenario.class_order=facil)
    order = np.random.RandomState(1993).permutation(100)
    c.scenario.class_order = ','.join(str(order[o]) for o in order)
  if dataset == 'cifar10':
    c.dataset.std = (0.2023, 0.1994, 0.2010)    # the reference's CIFAR-10 normalisation
  if dataset == 'fashion_mnist':
    c.dataset.max_per_class = 2000
  if opts['smoke']:   # Fashion-MNIST keeps 48 images per class (the tests' runs), the others 12; 32 px ImageNet
    shrink_to_smoke(c, max_per_class=48 if dataset == 'fashion_mnist' else 12, memory=min(c.memory.size, 6),
                    batch_size=16, replay_batch_size=0, eval_batch_size=50)
    if dataset == 'imagenet100':
      c.dataset.image_size = 32
    c.method.balanced_per_class = min(c.method.balanced_per_class, 2)
    c.method.stage2_epochs, c.method.stage2_milestones = 1, ()
  return c
