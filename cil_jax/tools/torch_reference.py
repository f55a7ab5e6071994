"""The PyTorch peer of the benchmarked train step: the same model, method loss, batch and optimizer,
written the way the reference code bases write them, for side-by-side timing (benchmark.py).

Only torch is imported here (no JAX, no TensorFlow). Models are NCHW modules run channels-last;
the losses follow the reference code (SS-IL-Official's sliced logits, iCaRL's task-wise KD) and
are tested against this project's on the same logits (tests/test_torch_reference.py).

  step = TorchStep('ssil', 'resnet32_cifar', num_classes=100, new_classes=(10, 20), ...)
  seconds = step.run(images, labels, replay, steps=20)
"""
from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch import nn

# A CUDA build of torch on a machine without CUDA warns on every torch.compile that it found no CUDA
# runtime; the CPU timing does not need one.
logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)

METHODS = ('ssil', 'icarl', 'ft')


class BasicBlock(nn.Module):
  """conv-bn-relu-conv-bn + shortcut (1x1 conv + BN when the shape changes), then ReLU: torchvision's
  block, which this project's ResNets (models/resnet.py) also use for CIFAR."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.down = None
    if stride != 1 or cin != cout:
      self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
  def __init__(self, stage_sizes, widths, num_classes, stem):
    super().__init__()
    if stem == 'imagenet':
      self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
                                nn.MaxPool2d(3, 2, 1))
    else:
      self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
    blocks, cin = [], widths[0]
    for s, (n, w) in enumerate(zip(stage_sizes, widths)):
      for b in range(n):
        blocks.append(BasicBlock(cin, w, 2 if (b == 0 and s > 0) else 1))
        cin = w
    self.blocks = nn.Sequential(*blocks)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class SmallConvNet(nn.Module):
  """models/resnet.py's SmallConvNet: three conv-BN-ReLU stages, 2x2 max-pool between them."""

  def __init__(self, num_classes, channels=1, widths=(16, 32, 64)):
    super().__init__()
    layers, cin = [], channels
    for s, w in enumerate(widths):
      layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
      if s < len(widths) - 1:
        layers.append(nn.MaxPool2d(2, 2))
      cin = w
    self.features = nn.Sequential(*layers)
    self.fc = nn.Linear(cin, num_classes)

  def forward(self, x):
    return self.fc(self.features(x).mean((2, 3)))


def make_model(name: str, num_classes: int, channels: int = 3) -> nn.Module:
  layouts = {'resnet18': ((2, 2, 2, 2), (64, 128, 256, 512), 'imagenet'),
             'resnet34': ((3, 4, 6, 3), (64, 128, 256, 512), 'imagenet'),
             'resnet18_cifar': ((2, 2, 2, 2), (64, 128, 256, 512), 'cifar'),
             'resnet34_cifar': ((3, 4, 6, 3), (64, 128, 256, 512), 'cifar'),
             'resnet32_cifar': ((5, 5, 5), (16, 32, 64), 'cifar')}
  if name == 'small_convnet':
    return SmallConvNet(num_classes, channels)
  if name not in layouts:
    raise ValueError(f'no PyTorch peer for model {name!r}; choose one of {sorted(layouts) + ["small_convnet"]}')
  sizes, widths, stem = layouts[name]
  return ResNet(sizes, widths, num_classes, stem)


def taskwise_kd(z, zt, bounds, temperature):
  """Σ over old task blocks [a, b) of T²·KL(softmax(ẑ/T) ‖ softmax(z/T)), batchmean (SS-IL-Official)."""
  kd = z.new_zeros(())
  for a, b in bounds:
    kd = kd + F.kl_div(F.log_softmax(z[:, a:b] / temperature, 1), F.softmax(zt[:, a:b] / temperature, 1),
                       reduction='batchmean') * temperature ** 2
  return kd


def ssil_loss(z, zt, labels, new_batch, old_bounds, new_range, temperature=2.0):
  """SS-IL-Official's trainer: the first B rows are new samples (CE over the new classes), the rest
  exemplars (CE over the old classes), summed over B + R; plus task-wise KD on all rows."""
  start, end = new_range
  ce = (F.cross_entropy(z[:new_batch, start:end], labels[:new_batch] - start, reduction='sum')
        + F.cross_entropy(z[new_batch:, :start], labels[new_batch:], reduction='sum')) / z.shape[0]
  return ce + taskwise_kd(z.float(), zt.float(), old_bounds, temperature)


def icarl_loss(z, zt, labels, old_bounds, seen, temperature=2.0):
  """The SS-IL code base's iCaRL trainer: CE over the seen classes + task-wise KD."""
  return F.cross_entropy(z[:, :seen], labels) + taskwise_kd(z.float(), zt.float(), old_bounds, temperature)


def ft_loss(z, labels, seen):
  return F.cross_entropy(z[:, :seen], labels)


class TorchStep:
  """One task-1 train step of `method` on `model`: normalise the uint8 NHWC batch, the frozen
  teacher's forward (no grad, eval mode), the student's forward (train-mode BN), the loss, backward,
  SGD (momentum 0.9, coupled weight decay 5e-4) at lr 0.01. compile=True wraps the forward + loss in
  torch.compile; dtype='bfloat16' runs them under autocast (float32 weights and optimizer)."""

  def __init__(self, method, model, num_classes, tasks_bounds, new_batch, channels=3, device='cpu',
               dtype='float32', compile=False, seed=0):
    if method not in METHODS:
      raise ValueError(f'no PyTorch peer for method {method!r}; choose one of {METHODS}')
    torch.manual_seed(seed)
    self.device = torch.device(device)
    if self.device.type == 'cuda':
      # As fast as PyTorch goes in float32: cuDNN's autotuner, and TF32 in convolutions and matrix
      # products, which XLA also uses for float32 on GPUs that have it (JAX's default precision).
      torch.backends.cudnn.benchmark = True
      torch.backends.cudnn.allow_tf32 = True
      torch.backends.cuda.matmul.allow_tf32 = True
    self.method, self.new_batch = method, new_batch
    self.start, self.end = tasks_bounds[-1]   # the current task's classes
    self.old_bounds = list(tasks_bounds[:-1])
    self.model = make_model(model, num_classes, channels).to(self.device, memory_format=torch.channels_last)
    self.teacher = None
    if method != 'ft':
      self.teacher = make_model(model, num_classes, channels).to(self.device, memory_format=torch.channels_last)
      self.teacher.load_state_dict(self.model.state_dict())
      self.teacher.eval().requires_grad_(False)
    self.model.train()
    self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4,
                               foreach=self.device.type == 'cuda')
    self.autocast = dtype == 'bfloat16'
    self.forward = torch.compile(self._forward_loss) if compile else self._forward_loss

  def _forward_loss(self, images, labels):
    x = images.permute(0, 3, 1, 2).float().div(255.0).sub(0.5).div(0.25)   # NHWC uint8 -> NCHW, channels-last
    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
      zt = None
      if self.teacher is not None:
        with torch.no_grad():
          zt = self.teacher(x)
      z = self.model(x)
    if self.method == 'ssil':
      return ssil_loss(z.float(), zt, labels, self.new_batch, self.old_bounds, (self.start, self.end))
    if self.method == 'icarl':
      return icarl_loss(z.float(), zt, labels, self.old_bounds, self.end)
    return ft_loss(z.float(), labels, self.end)

  def step(self, images, labels):
    loss = self.forward(images, labels)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    self.opt.step()
    return loss

  def to_device(self, images, labels):
    return (torch.from_numpy(images).to(self.device), torch.from_numpy(labels).long().to(self.device))

  def sync(self):
    if self.device.type == 'cuda':
      torch.cuda.synchronize()

  def run(self, images, labels, steps: int) -> tuple[float, float]:
    """Seconds for `steps` steps dispatched back to back, waited for once; and the last loss."""
    self.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
      loss = self.step(images, labels)
    self.sync()
    return time.perf_counter() - t0, loss.item()
