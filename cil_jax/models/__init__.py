"""Model zoo: `create(name, num_classes, last_relu, dtype, head)`.

The names are listed here without importing Flax, so configs are validated before anything heavy
is imported (tests check they match resnet.MODELS and heads.HEADS).
"""
NAMES = ('resnet18', 'resnet18_cifar', 'resnet32_cifar', 'resnet34', 'resnet34_cifar', 'small_convnet')
HEADS = ('cosine', 'linear', 'lsc')
DTYPES = ('bfloat16', 'float32')


def create(name: str, num_classes: int, last_relu: bool = True, dtype: str = 'float32', head: str = 'linear',
           **options):
  """`options`: more fields of the model's class, e.g. a network that a method grows per task
  (api.Method.network)."""
  from cil_jax.models import resnet
  return resnet.create(name, num_classes, last_relu=last_relu, dtype=dtype, head=head, **options)
