"""The evaluation step: counts accumulated on the devices equal a numpy evaluation of the method's
own prediction (task-agnostic top-1 / top-5 and task-aware), padding excluded."""
import jax
import jax.numpy as jnp
import numpy as np

from cil_jax.results import metrics
from cil_jax import models
from cil_jax.engine import parallel
from cil_jax.methods.losses import NEG
from cil_jax.methods.api import Classes
from cil_jax.input_pipeline.scenario import Tasks
from cil_jax.engine.step import make_eval_step, normalizer


def test_eval_counts_use_the_methods_prediction_and_skip_padding():
  tasks = Tasks(10, 4, 3)                   # tasks of 4, 3, 3 classes: base != step
  t = 2
  classes = Classes.for_task(tasks, t)
  model = models.create('small_convnet', 10)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  params = {'model': variables['params'], 'method': {}}

  def predict(out, params, state, classes):  # not the CNN's argmax: task-aware must follow this
    return jnp.where(classes.seen, -out['logits'] + state['shift'], NEG)
  state = {'shift': jnp.asarray(np.random.RandomState(1).randn(10).astype(np.float32))}
  replicated, sharded = parallel.shardings(parallel.make_mesh())
  step = make_eval_step(model, predict, normalizer((0.3,), (0.35,)), replicated, sharded)
  rng = np.random.RandomState(0)
  counts = jnp.zeros((tasks.num_tasks, 4), jnp.int32)
  all_scores, all_labels = [], []
  for _ in range(3):
    images = rng.randint(0, 256, (16, 28, 28, 1)).astype(np.uint8)
    labels = rng.randint(0, tasks.end(t), 16).astype(np.int32)
    valid = np.arange(16) < 13                # the last 3 slots are padding
    counts = step(counts, params, variables['batch_stats'], state, images, labels, valid, classes)
    out = model.apply(variables, normalizer((0.3,), (0.35,))(images), train=False)
    all_scores.append(np.asarray(predict(out, params, state, classes))[valid])
    all_labels.append(labels[valid])
  scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
  top5 = np.argsort(-scores, axis=1, kind='stable')[:, :5]
  task_of = tasks.task_of_class()
  own = task_of[None, :] == task_of[labels][:, None]
  aware = np.argmax(np.where(own, scores, -np.inf), axis=1)
  got = metrics.row_from_counts(np.asarray(counts), t)
  sample_task = task_of[labels]
  pct = lambda hits: float(100.0 * hits.mean())  # noqa: E731
  hit1, hit5, aware_hit = top5[:, 0] == labels, (top5 == labels[:, None]).any(1), aware == labels
  assert got['top1'] == [pct(hit1[sample_task == j]) for j in range(t + 1)]
  assert got['top5'] == [pct(hit5[sample_task == j]) for j in range(t + 1)]
  assert got['task_aware'] == [pct(aware_hit[sample_task == j]) for j in range(t + 1)]
  assert (got['top1_all'], got['top5_all']) == (pct(hit1), pct(hit5))
  assert (got['old'], got['new']) == (pct(hit1[sample_task < t]), pct(hit1[sample_task == t]))
  assert int(np.asarray(counts)[:, 3].sum()) == 39   # 3 batches x 13 valid samples
  logits_aware = np.argmax(np.where(own, -scores, -np.inf), axis=1)  # raw-logit-like: another answer
  assert (logits_aware != aware).any()
