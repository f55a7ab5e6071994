"""Class order, task splits, memory arithmetic and exemplar selection."""
import numpy as np
import pytest

from cil_jax.input_pipeline import scenario
from cil_jax.input_pipeline.scenario import Memory, ScenarioError, Tasks

LUCIR_ORDER = [68, 56, 78, 8, 23, 84, 90, 65, 74, 76, 40, 89, 3, 92, 55, 9, 26, 80, 43, 38, 58, 70, 77, 1, 85, 19,
               17, 50, 28, 53, 13, 81, 45, 82, 6, 59, 83, 16, 15, 44, 91, 41, 72, 60, 79, 52, 20, 10, 31, 54, 37,
               95, 14, 71, 96, 98, 97, 2, 64, 66, 42, 22, 35, 86, 24, 34, 87, 21, 99, 0, 88, 27, 18, 94, 11, 12,
               47, 25, 30, 46, 62, 69, 36, 61, 7, 63, 75, 5, 32, 4, 51, 48, 73, 93, 39, 67, 29, 49, 57, 33]


def test_ssil_and_facil_orders_are_inverse_permutations():
  ssil = scenario.label_map(100, 'ssil', 1993)
  facil = scenario.label_map(100, 'facil', 1993)
  np.testing.assert_array_equal(ssil[facil], np.arange(100))
  # SS-IL: original c becomes perm[c]
  np.testing.assert_array_equal(ssil, np.random.RandomState(1993).permutation(100))


def test_explicit_order_is_the_lucir_seed_1993_order():
  m = scenario.label_map(100, LUCIR_ORDER, 0)
  assert m[68] == 0 and m[33] == 99
  np.testing.assert_array_equal(scenario.label_map(100, 'facil', 1993), m)


def test_bad_order_is_rejected():
  with pytest.raises(ScenarioError, match='permutation'):
    scenario.label_map(5, [0, 1, 1, 2, 3], 0)


def test_tasks_with_uneven_last_task():
  t = Tasks(10, base=4, step=4)
  assert t.num_tasks == 3
  assert [(t.start(k), t.end(k)) for k in range(3)] == [(0, 4), (4, 8), (8, 10)]


def test_imagenet_t10_m20000_memory_arithmetic():
  tasks = Tasks(1000, 100, 100)
  memory = Memory.empty()
  expected = [{200}, {100}, {66, 67}, {50}, {40}, {33, 34}, {28, 29}, {25}, {22, 23}]
  for t in range(9):
    cands = [np.arange(c * 1300, c * 1300 + 1300) for c in range(tasks.start(t), tasks.end(t))]
    previous = [c.copy() for c in memory.per_class()]
    memory = memory.update(cands, 20000, 1000, 'fixed')
    assert memory.size == 20000
    assert set(memory.counts.tolist()) == expected[t]
    for old, new in zip(previous, memory.per_class()):  # nested: old sets are truncated, never changed
      np.testing.assert_array_equal(new, old[:len(new)])


def test_growing_memory_and_small_classes():
  sizes = scenario.per_class_sizes(2000, 20, 100, 'growing', available=np.array([5] + [100] * 19))
  assert sizes[0] == 5 and (sizes[1:] == 20).all()
  # a class with fewer images than bpc keeps all of them and never spills into other classes
  mem = Memory.empty().update([np.arange(3), np.arange(10, 60)], 40, 2, 'fixed')
  assert mem.counts.tolist() == [3, 20]
  assert set(mem.per_class()[1]) <= set(range(10, 60))


def test_impossible_memory_budget_is_a_clear_error():
  with pytest.raises(ScenarioError, match='smaller than the 200 classes seen after task 2 of'):
    scenario.check_memory_budget(150, Tasks(1000, 100, 100), 'fixed')
  scenario.check_memory_budget(0, Tasks(1000, 100, 100), 'fixed')  # no memory is allowed


def test_random_selection_is_seeded():
  idx = np.arange(100, 200)
  a = scenario.random_priority(idx, 0, 3)
  np.testing.assert_array_equal(a, scenario.random_priority(idx, 0, 3))
  assert not np.array_equal(a, scenario.random_priority(idx, 1, 3))
  assert sorted(a.tolist()) == idx.tolist()


def test_herding_matches_brute_force():
  rng = np.random.RandomState(0)
  f = rng.randn(12, 4)
  got = scenario.herding_priority(np.arange(12) + 100, f, 5)
  fn = f / np.linalg.norm(f, axis=1, keepdims=True)
  mu = fn.mean(0)
  chosen = []
  for k in range(5):  # independent greedy: try every remaining candidate
    best = min((i for i in range(12) if i not in chosen),
               key=lambda i: np.linalg.norm(mu - fn[chosen + [i]].mean(0)))
    chosen.append(best)
  np.testing.assert_array_equal(got, np.array(chosen) + 100)
