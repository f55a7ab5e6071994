"""Data parallelism the current way: a 1-D device mesh, batch sharded on 'data', state replicated.

One jitted program sees the global batch, so BatchNorm statistics (and every result) do not depend
on the number of devices. Multi-host: each process feeds its slice of the global batch.
"""
from __future__ import annotations

import collections
import itertools
from typing import Iterable, Iterator

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
  # Auto axis types (the Mesh default): optax integer-label losses raise under Explicit axes.
  return Mesh(np.asarray(jax.devices()), ('data',))


def shardings(mesh: Mesh) -> tuple[NamedSharding, NamedSharding]:
  """(replicated, batch-sharded)."""
  return NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))


def check_batch(global_batch: int, what: str) -> None:
  n = jax.device_count()
  if global_batch % n:
    raise ValueError(f'{what}={global_batch} is not divisible by the {n} devices; choose a multiple of {n}')


def to_global(batch: dict, data_sharding: NamedSharding) -> dict:
  """Host-local numpy batch -> global jax arrays sharded over the mesh (asynchronous copy)."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(data_sharding, np.asarray(x)), batch)


MAX_IN_FLIGHT = 16


class Throttle:
  """Called on each dispatched step's output: every MAX_IN_FLIGHT calls it waits for that output.
  Several CPU devices deadlock in their collectives once some 32 steps are in flight, in one process
  (a smoke run on 4 host devices over the full Fashion-MNIST test set) and across processes joined
  by gloo (seen with 50 steps dispatched between waits, never with 25); evaluation and host-side
  passes wait for nothing else. One CPU device, or accelerators: it does nothing."""

  def __init__(self):
    self.active = jax.device_count() > 1 and jax.devices()[0].platform == 'cpu'
    self.calls = 0

  def __call__(self, out):
    if self.active:
      self.calls += 1
      if self.calls % MAX_IN_FLIGHT == 0:
        jax.block_until_ready(out)
    return out


def prefetch(items: Iterable, put, size: int = 2) -> Iterator:
  """put(item) (an asynchronous copy to the devices) kept `size` items ahead of the consumer, so the
  accelerator never waits on the copy."""
  queue = collections.deque()
  it = iter(items)
  for item in itertools.islice(it, size):
    queue.append(put(item))
  while queue:
    yield queue.popleft()
    for item in itertools.islice(it, 1):
      queue.append(put(item))

