"""Method registry: every method's config options (`config.method`) with their defaults, documented
once here, and `get(name)` -> the method's module (`make(config) -> Method`), imported on demand.

This module imports nothing heavy, so configs load and are validated without JAX or TensorFlow.
"""
import importlib

OPTIONS = {
    'ssil': {'temperature': 2.0},        # T of the task-wise KD
    'ft': {},
    'joint': {},
    'il2m': {},
    'icarl': {
        'temperature': 2.0,
        'variant': 'ssil',               # 'ssil': CE + task-wise KD (SS-IL code base); 'original': sigmoid BCE
        'kd': 'taskwise',                # variant ssil: taskwise (SS-IL code base) | joint | both (IIL-CLSF's idea)
        'pred_loss': 'ce',               # variant ssil: ce | bce (sigmoid, one-hot) | ce+bce (IIL-CLSF's idea)
        'nme': True,                     # evaluate by nearest class mean (False: the CNN head)
        'nme_augment': True,             # class means on train-transform images (the SS-IL code base)
    },
    'eeil': {
        'temperature': 2.0,
        'kd': 'taskwise',                # stage 1: taskwise (SS-IL code base) | joint | both (IIL-CLSF's idea)
        'pred_loss': 'ce',               # stage 1: ce | bce (sigmoid, one-hot) | ce+bce (IIL-CLSF's idea)
        'bft_lr_factor': 0.1,            # balanced fine-tuning lr = main lr x this
        'bft_epochs_factor': 0.75,       # balanced fine-tuning epochs (and milestones) = main x this
    },
    'bic': {
        'temperature': 2.0,
        'heldout_fraction': 0.2,         # share of the memory held out to train the bias layer
    },
    'lwf': {                             # FACIL's LwF and the RethinkSoftmax variants (methods/lwf.py)
        'variant': 'lwf',                # lwf | s | sr | br | br2 | bsr
        'lamb': 1.0,                     # λ of the distillation terms
        'temperature': 2.0,              # T of the KD terms (FACIL: --T 2)
        'multi_softmax': False,          # task-agnostic prediction from each head's log-softmax (FACIL)
    },
    'lucir': {
        'form': 'ssil',                  # 'ssil': the SS-IL code base's LUCIR (imprinting; margin ranking on
                                         # logits / detached η); 'facil': FACIL's (no imprinting; margin
                                         # ranking on the unscaled cosines; validation loss = CE)
        'variant': 'lucir',              # lucir | sr | bsr | br2 (RethinkSoftmax's losses; methods/lucir.py)
        'sr_gamma': 0.1,                 # sr: weight γ of the per-head KD, times λ (the reference hard-codes 0.1)
        'feature_kd_split': 'per_old_task',  # bsr / br2: per_old_task | by_sample_task | reference (lucir.py)
        'multi_softmax': False,          # task-agnostic prediction from each task head's log-softmax (FACIL)
        'lambda_base': 10.0,             # less-forget weight λ_base; λ = λ_base·sqrt(old / new)
        'margin': 0.5,                   # margin ranking margin
        'k': 2,                          # hardest new-class negatives per old-class sample
        'class_balanced_finetuning': False,  # the paper's CBF stage (never called in the SS-IL code base)
        'cbf_epochs': 20,
        'cbf_lr': 0.01,
        'cbf_milestones': (10,),
        'imprint_augment': False,        # imprint from train-transform features (False: test transform)
    },
    'podnet': {
        'lambda_c': 8.0,                 # POD-spatial weight, divided by the number of stages
        'lambda_f': 10.0,                # POD-flat weight
        'adaptive_weights': False,       # True: both weights x sqrt(seen / new) (PODNet paper)
        'pod_spatial_concat': False,     # True: PODNet paper's concatenated width+height pooling
        'nca_margin': 0.6,
        'proxies': 10,                   # K; must equal the lsc head's (models/heads.py)
        'finetune_epochs': 20,           # classifier fine-tuning on the balanced set (t >= 1); 0 = none
        'finetune_lr': 0.01,
        'imprint_augment': True,         # KMeans on train-transform features (the reference's loader)
        'nme': False,                    # evaluate by nearest class mean instead of the class scores
        'nme_augment': True,             # NME means on train-transform features (the SS-IL code base)
    },
    'mgrb': {                            # MGRB (methods/mgrb.py); the names of etrain.py's flags in brackets
        'hierarchy': 'dataset',          # dataset | wordnet | visual | none (no L_MG) [-cluster, --vis_hier]
        'coarse_groups': (),             # dataset: a group per original class id; () = the dataset's coarse labels
        'clusters': 5,                   # visual: KMeans groups K [-cluster]
        'wordnet_depth': 0,              # wordnet: the distance normaliser H; 0 = the seen classes' tree height
        'wordnet_norm': 'height',        # wordnet: 'height' (H above, both stages) | 'reference' (etrain.py's
                                         # max_depth - 1: 1 in stage 1, 17 in stage 2; docs/deviations.md M3)
        'beta': 20.0,                    # soft-target sharpness β [-beta]
        'mg_scale': 1.0,                 # weight of L_MG [-scale]
        'dscale': 1.0,                   # weight of the KD term, times α·T² [-dscale]
        'temperature': 2.0,              # T of the KD term
        'cb_loss': True,                 # class-balanced CE (False: plain CE, batch mean) [--cbloss]
        'cb_reduction': 'sum',           # sum (the reference) | mean over the batch
        'cb_new_count': 0,               # n_c of new classes; 0 = the largest class's training-set size
        'balanced_per_class': 2,         # of memory.size per class, the balanced set's share (CIFAR-10: 20)
        'balanced_augment': False,       # the balanced set (stage 2, visual features) in the train transform
                                         # (the reference's miniImageNet / ImageNet-100 loaders); False: test
        'decoupling': True,              # stage 2 on the balanced set (False: --no_dcp)
        'stage2_epochs': 40,             # CIFAR 40, others 30
        'stage2_milestones': (15,),      # reference milestones of stage 2 (each takes effect one epoch later)
        'warmup_epochs': 1,              # linear warm-up of the backbone's lr in stage 1
    },
}
NAMES = tuple(sorted(OPTIONS))

# What a method needs from the rest of the config, applied by config_base.set_method and checked by
# config_base.validate. LUCIR and PODNet: their own head, features without the last ReLU, and, as
# their reference code, a fresh optimizer each task (the rows of classes not yet imprinted are held
# still by masked updates; a momentum buffer carried over from earlier tasks would move them).
# MGRB: its fixed per-class memory, the class's first images in file order.
REQUIRES = {
    'lucir': {'model.head': 'cosine', 'model.last_relu': False, 'train.reset_optimizer_each_task': True},
    'podnet': {'model.head': 'lsc', 'model.last_relu': False, 'train.reset_optimizer_each_task': True},
    'mgrb': {'model.head': 'linear', 'memory.policy': 'per_class', 'memory.selection': 'file_order'},
}


def get(name: str):
  """The module of method `name` (cil_jax/methods/<name>.py; the name was checked with the config)."""
  return importlib.import_module(f'cil_jax.methods.{name}')
