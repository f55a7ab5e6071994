"""Model zoo: `create(name, num_classes, last_relu, dtype)`."""
from cil_jax.models.resnet import MODELS, create  # noqa: F401
