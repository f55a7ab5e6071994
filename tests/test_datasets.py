"""The Landmarks v2, miniImageNet and ImageNet-100 readers and the data check command, on tiny
fixtures in each real on-disk format (GLDv2's nested layout with its csv files, the reference's class
folders, CIL-MGRB's and Ravi & Larochelle's miniImageNet layouts, an ImageNet folder with a class
list), bad files included."""
import csv
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

from cil_jax.tools import data_check as data
from cil_jax.input_pipeline import base, class_lists, imagenet100, landmarks, miniimagenet, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg(**fields):
  c = ml_collections.ConfigDict({'name': 'fashion_mnist', 'root': '', 'data_dir': '', 'download': False,
                                 'num_classes': 0, 'image_size': 0, 'class_list': '', 'csv': '', 'augment': '',
                                 'mean': (), 'std': (), 'max_per_class': 0})
  c.update(fields)
  return c


def _error(fn, *args):
  with pytest.raises(base.DataError) as e:
    fn(*args)
  return str(e.value)


def _jpeg(path, seed, size=(20, 16)):
  rng = np.random.RandomState(seed)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)


# --- Google Landmarks v2 ---------------------------------------------------------------------------

# landmark id -> images. '12' and '7' tie at 13 images: the tie goes to '7', the later name in string
# order (ImageFolder's order of folder names; the reference's np.flip(np.argsort(counts)) with a stable
# sort), though 7 < 12 as numbers.
GLD_SIZES = {'5': 15, '7': 13, '12': 13, '30': 12, '4': 10}


def _gld_ids(rng, n):
  return [''.join(rng.choice(list('0123456789abcdef'), 16)) for _ in range(n)]


@pytest.fixture(scope='module')
def gld(tmp_path_factory):
  """GLDv2 as downloaded: train.csv, train_clean.csv and train/<a>/<b>/<c>/<id>.jpg, plus the
  same images as a class-folder tree (the reference's prepared train_10k)."""
  root = tmp_path_factory.mktemp('gldv2')
  rng = np.random.RandomState(0)
  rows = []
  for landmark, n in GLD_SIZES.items():
    rows += [(i, landmark) for i in _gld_ids(rng, n)]
  rng.shuffle(rows)                   # the csv's own order is not the file order
  with open(root / 'train.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['id', 'url', 'landmark_id'])
    for k, (i, landmark) in enumerate(rows):
      w.writerow([i, f'http://example.com/{k}.jpg?a=1,b=2', landmark])   # a url with a comma, quoted
      _jpeg(landmarks.image_path(str(root), i), seed=k)
  with open(root / 'train_clean.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['landmark_id', 'images'])
    for landmark in GLD_SIZES:
      w.writerow([landmark, ' '.join(i for i, l in rows if l == landmark)])
  tree = tmp_path_factory.mktemp('gld_tree')
  for i, landmark in rows:
    os.makedirs(tree / landmark, exist_ok=True)
    shutil.copy(landmarks.image_path(str(root), i), tree / landmark / f'{i}.jpg')
  return {'root': root, 'tree': tree, 'rows': rows}


def _expected_selection(rows, kept, test_per_class):
  """Independently: each kept class's ids sorted, the first test_per_class to test."""
  train, test = [], []
  for label, landmark in enumerate(kept):
    ids = sorted(i for i, l in rows if l == landmark)
    test += [(i, label) for i in ids[:test_per_class]]
    train += [(i, label) for i in ids[test_per_class:]]
  return train, test


def _ids_labels(split):
  return [(os.path.basename(str(f))[:-4], int(y)) for f, y in zip(split.files, split.labels)]


@pytest.mark.parametrize('layout', ['train.csv', 'train_clean.csv', 'tree'])
def test_landmarks_selects_the_most_frequent_classes_by_decreasing_count(gld, layout):
  root = gld['tree'] if layout == 'tree' else gld['root']
  cfg = _cfg(name='landmarks_v2_10k', root=str(root), num_classes=3, csv='' if layout == 'tree' else layout)
  source = sources.load(cfg)
  assert source.class_names == ('5', '7', '12')     # 15, then the 13-13 tie by decreasing name
  train, test = _expected_selection(gld['rows'], ['5', '7', '12'], 10)
  assert _ids_labels(source.test) == test and _ids_labels(source.train) == train
  assert source.mean == (0.0, 0.0, 0.0) and source.std == (1.0, 1.0, 1.0)   # the reference feeds [0, 1]
  assert source.augment == 'imagenet' and source.image_size == 224
  for f in source.train.files:
    assert os.path.isfile(f)
  kept = sources.load(_cfg(**{**cfg.to_dict(), 'num_classes': 2}))
  assert kept.class_names == ('5', '7')               # the tie at the cut: '7' before '12'


def test_landmarks_1k_keeps_50_test_images_per_class():
  classes = np.asarray(['a'] * 60 + ['b'] * 55 + ['c'] * 70)
  files = np.asarray([f'{c}/{i:03d}.jpg' for i, c in enumerate(classes)])
  kept, counts, total = landmarks.select(classes, 2)
  assert list(kept) == ['c', 'a'] and list(counts) == [70, 60] and total == 3
  tied = np.asarray(['b'] * 3 + ['a'] * 3 + ['c'] * 2)
  ref_order = np.flip(np.argsort(np.asarray([3, 3, 2]), kind='stable'))    # the reference's, stable: b, a, c
  assert list(landmarks.select(tied, 3)[0]) == [['a', 'b', 'c'][k] for k in ref_order]
  train, test = landmarks.split_by_class(files, classes, kept, 50, sort_keys=files)
  assert np.bincount(test.labels).tolist() == [50, 50] and np.bincount(train.labels).tolist() == [20, 10]
  assert landmarks.VARIANTS == {'landmarks_v2_1k': (1000, 50), 'landmarks_v2_10k': (10000, 10)}


def test_landmarks_errors_name_the_fix(gld, tmp_path):
  message = _error(sources.load, _cfg(name='landmarks_v2_10k', root=str(gld['root']), num_classes=9))
  assert 'has 5 classes, fewer than the 9 to keep' in message
  only_clean = tmp_path / 'clean'
  only_clean.mkdir()
  shutil.copy(gld['root'] / 'train_clean.csv', only_clean)
  message = _error(sources.load, _cfg(name='landmarks_v2_10k', root=str(only_clean), num_classes=2))
  assert 'has no train.csv' in message and 'dataset.csv=train_clean.csv' in message
  (only_clean / 'train.csv').write_text('a,b\n1,2\n')
  message = _error(sources.load, _cfg(name='landmarks_v2_10k', root=str(only_clean), num_classes=2))
  assert 'not those of GLDv2 train.csv' in message
  message = _error(sources.load, _cfg(name='landmarks_v2_1k', root=''))
  assert 'needs dataset.root' in message and 'train.csv' in message
  message = _error(sources.load, _cfg(name='landmarks_v2_10k', root=str(gld['root']), num_classes=5))
  assert "class '4' (rank 5) has 10 images, none left to train on" in message


def test_landmarks_missing_images_are_counted_and_named(gld, tmp_path):
  root = tmp_path / 'partial'
  shutil.copytree(gld['root'], root)
  gone = [i for i, l in gld['rows'] if l == '5'][:2]
  for i in gone:
    os.remove(landmarks.image_path(str(root), i))
  message = _error(sources.load, _cfg(name='landmarks_v2_10k', root=str(root), num_classes=3))
  assert message.startswith('2 images of the 3 selected classes are missing')
  assert repr(landmarks.image_path(str(root), sorted(gone)[0])) in message and 'cil-jax data check' in message


# --- miniImageNet ----------------------------------------------------------------------------------

MINI = ['n01532829', 'n01558993', 'n01704323', 'n01749939']


@pytest.fixture(scope='module')
def mini_mgrb(tmp_path_factory):
  """CIL-MGRB's processed layout: train/<wnid>/ and test/<wnid>/ with <wnid>_boxes.txt; 84 x 84."""
  root = tmp_path_factory.mktemp('mini_mgrb')
  for split, n in (('train', 6), ('test', 3)):
    for c, w in enumerate(MINI):
      names = [f'{w}_{i}.JPEG' for i in range(n)][::-1]     # the boxes file's order is not sorted
      for k, name in enumerate(names):
        _jpeg(str(root / split / w / name), seed=100 * c + k, size=(84, 84))
      (root / split / w / f'{w}_boxes.txt').write_text(''.join(f'{n}\t0\t0\t84\t84\n' for n in names))
  return root


def test_miniimagenet_mgrb_layout_in_boxes_order(mini_mgrb):
  source = sources.load(_cfg(name='miniimagenet', root=str(mini_mgrb)))
  assert source.class_names == tuple(MINI) and source.wnids == tuple(MINI)
  assert source.train.images.shape == (24, 84, 84, 3) and source.test.images.shape == (12, 84, 84, 3)
  first = np.asarray(Image.open(mini_mgrb / 'train' / MINI[0] / f'{MINI[0]}_5.JPEG').convert('RGB'))
  np.testing.assert_array_equal(source.train.images[0], first)   # line 1 of the boxes file
  assert source.train.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 + [3] * 6
  assert source.image_size == 84 and source.mean == base.IMAGENET_MEAN


def test_miniimagenet_ravi_csv_layout_splits_each_class_in_file_order(tmp_path, monkeypatch):
  monkeypatch.setattr(miniimagenet, 'TEST_PER_CLASS', 3)
  root = tmp_path / 'mini'
  parts = {'train': MINI[:2], 'val': MINI[2:3], 'test': MINI[3:]}
  for part, wnids in parts.items():
    rows = [(f'{w}{i:08d}.jpg', w) for w in wnids for i in range(1, 8)]
    os.makedirs(root / 'images', exist_ok=True)
    with open(root / f'{part}.csv', 'w', newline='') as f:
      wr = csv.writer(f)
      wr.writerow(['filename', 'label'])
      wr.writerows(rows[::-1])
    for k, (name, _) in enumerate(rows):
      _jpeg(str(root / 'images' / name), seed=k, size=(100, 90))    # not 84 x 84: resized
  source = sources.load(_cfg(name='miniimagenet', root=str(root)))
  assert source.class_names == tuple(sorted(MINI))
  assert np.bincount(source.train.labels).tolist() == [4] * 4 and np.bincount(source.test.labels).tolist() == [3] * 4
  split = miniimagenet.file_splits(_cfg(root=str(root)))
  assert [os.path.basename(f) for f in split[1].files[:3]] == [f'{MINI[0]}{i:08d}.jpg' for i in (5, 6, 7)]
  assert source.train.images.shape[1:] == (84, 84, 3)


def _mini_with_bad_files(mini_mgrb, tmp_path, bad):
  """A copy of the miniImageNet fixture where the (split, class, image) files of `bad` are broken."""
  root = tmp_path / 'mini'
  shutil.copytree(mini_mgrb, root)
  paths = [root / split / MINI[c] / f'{MINI[c]}_{i}.JPEG' for split, c, i in bad]
  for p in paths:
    p.write_bytes(b'not an image')
  return root, paths


def test_miniimagenet_corrupt_files_are_all_named(mini_mgrb, tmp_path):
  root, bad = _mini_with_bad_files(mini_mgrb, tmp_path, [('train', 1, 2), ('test', 2, 0)])
  message = _error(sources.load, _cfg(name='miniimagenet', root=str(root)))
  assert message.startswith('2 miniImageNet image(s) cannot be read') and all(str(b) in message for b in bad)
  shutil.rmtree(root / 'test' / MINI[3])
  message = _error(sources.load, _cfg(name='miniimagenet', root=str(root)))
  assert MINI[3] in message and 'only one of' in message
  assert 'needs dataset.root' in _error(sources.load, _cfg(name='miniimagenet'))


# --- ImageNet-100 ----------------------------------------------------------------------------------

def test_imagenet100_class_lists_are_the_references():
  """LUCIR: seed-1993 np.random.choice over the sorted 1000 wnids; PODNet: the first 100."""
  with open(os.path.join(ROOT, 'tests', 'data', 'imagenet1000_wnids.txt')) as f:
    all_wnids = f.read().split()
  assert len(all_wnids) == 1000 and all_wnids == sorted(all_wnids)
  np.random.seed(1993)
  lucir = np.random.choice(all_wnids, 100, replace=False)
  assert list(class_lists.IMAGENET100_LUCIR) == sorted(lucir)
  assert list(class_lists.IMAGENET100_PODNET) == all_wnids[:100]
  assert len(set(class_lists.MINIIMAGENET)) == 100 and list(class_lists.MINIIMAGENET) == sorted(class_lists.MINIIMAGENET)
  assert len(set(class_lists.IMAGENET100_LUCIR) & set(class_lists.IMAGENET100_PODNET)) == 9


def test_imagenet100_is_a_class_list_over_imagenet_folders(imagenet_dir, tmp_path):
  listed = tmp_path / 'classes.txt'
  listed.write_text('# two of the four\nn00000003\nn00000001  # a comment\n')
  source = sources.load(_cfg(name='imagenet100', root=imagenet_dir, class_list=str(listed)))
  assert source.num_classes == 2 and source.wnids == ('n00000001', 'n00000003')
  assert len(source.train) == 20 and len(source.test) == 6
  assert all('/n00000001/' in f for f in source.train.files[source.train.labels == 0])
  listed.write_text('n00000001\nn00000007\n')
  message = _error(sources.load, _cfg(name='imagenet100', root=imagenet_dir, class_list=str(listed)))
  assert "no folder for class 'n00000007'" in message and 'class list' in message
  listed.write_text('n00000001\nbanana\n')
  assert "'banana' is not a WordNet id" in _error(sources.load, _cfg(name='imagenet100', root=imagenet_dir,
                                                                    class_list=str(listed)))
  message = _error(sources.load, _cfg(name='imagenet100', root=imagenet_dir))      # lucir's 100: not there
  assert 'no folder for class' in message and '100 classes missing' in message
  message = _error(sources.load, _cfg(name='imagenet100', root=imagenet_dir, class_list='nope'))
  assert "'lucir' nor 'podnet'" in message


def test_imagenet100_over_tfds_records_relabels_and_keeps_only_the_list():
  records = [{'image': b'img%d' % i, 'label': lab} for i, lab in enumerate([5, 2, 9, 2, 5, 7])]
  split = base.Split(labels=np.asarray([r['label'] for r in records], np.int64), records=records)
  names = tuple(f'n{k:08d}' for k in range(10))
  sub = imagenet100._records_of(split, names, ['n00000002', 'n00000005'], 'train')
  assert sub.labels.tolist() == [1, 0, 0, 1] and [sub.records[i]['image'] for i in range(4)] == \
      [b'img0', b'img1', b'img3', b'img4']
  assert 'no class' in _error(imagenet100._records_of, split, names, ['n00000011'], 'train')


# --- the data check command ------------------------------------------------------------------------

def _check(*args):
  return subprocess.run([sys.executable, '-m', 'cil_jax', 'data', 'check', *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)


def test_data_check_lists_every_bad_file_and_counts(imagenet_dir, tmp_path):
  root = tmp_path / 'imagenet'
  shutil.copytree(imagenet_dir, root)
  bad = [root / 'train' / 'n00000001' / 'n00000001_4.JPEG', root / 'val' / 'n00000002' / 'n00000002_0.JPEG']
  bad[0].write_bytes(bad[0].read_bytes()[:300])   # truncated: libjpeg itself complains on stderr
  bad[1].write_bytes(b'\xff\xd8 truncated')
  (root / 'train' / 'n00000003' / 'readme.txt').write_text('not an image')
  out = tmp_path / 'report'
  r = _check('--config', 'configs/ssil_imagenet.py:smoke', f'--config.dataset.root={root}', '--out', str(out),
             '--threads', '2')
  assert r.returncode == 1, r.stdout + r.stderr
  for b in bad:
    assert f'cannot decode: {b}' in r.stdout
  why = next(line for line in r.stdout.splitlines() if line.startswith(f'cannot decode: {bad[0]}'))
  assert 'Error: ' in why and '{{' not in why and '[Op:' not in why, why   # TF's op wrappers dropped
  assert 'rendezvous' not in r.stderr, r.stderr[-2000:]   # nor TF's native warning per rejected image
  assert 'JPEG library' not in r.stdout + r.stderr        # nor libjpeg's own line: the report names the file
  assert f'not an image (ignored by the reader): {root}/train/n00000003/readme.txt' in r.stdout
  assert 'train images: 40' in r.stdout and 'test images: 12' in r.stdout and 'classes: 4' in r.stdout
  assert '2 of 52 images do not decode' in r.stdout and 'PROBLEMS FOUND' in r.stdout
  lines = (out / 'classes.tsv').read_text().splitlines()
  assert lines[0] == 'label\tclass\ttrain\ttest' and lines[1] == '0\tn00000000\t10\t3' and len(lines) == 5
  assert str(bad[0]) in (out / 'bad_files.txt').read_text()


def test_data_check_refuses_a_stray_argument_a_negative_thread_count_and_a_file_as_out(tmp_path, capsys):
  (tmp_path / 'notes').write_text('a file')
  for args, line in ((['extra'], "unexpected argument 'extra': the dataset comes from --config FILE"),
                     (['--threads', '-1'], '--threads=-1: give a number of threads, or 0 for 2 per core'),
                     (['--out', str(tmp_path / 'notes')], f"--out {tmp_path / 'notes'} is a file; give a folder"),
                     (['--output=x'], 'unknown option --output; did you mean --out?')):
    with pytest.raises(SystemExit):
      data.main(['data', 'check', '--config', 'configs/default.py', *args])
    assert line in capsys.readouterr().err


def test_data_check_landmarks_shows_the_selection_and_missing_files(gld, tmp_path):
  root = tmp_path / 'gld'
  shutil.copytree(gld['root'], root)
  gone = landmarks.image_path(str(root), sorted(i for i, l in gld['rows'] if l == '7')[0])   # a test image
  os.remove(gone)
  r = _check('--config', 'configs/ssil_landmarks.py:10k,smoke', f'--config.dataset.root={root}',
             '--config.dataset.num_classes=3')
  assert r.returncode == 1, r.stdout + r.stderr
  assert 'the 3 with the most images kept' in r.stdout and 'largest: 5 (15), 7 (13), 12 (13)' in r.stdout
  assert f'missing: {gone}' in r.stdout and 'test images: 29 (the full dataset has 30)' in r.stdout
  r = _check('--config', 'configs/ssil_landmarks.py:10k,smoke', f'--config.dataset.root={gld["root"]}',
             '--config.dataset.num_classes=3')
  assert r.returncode == 0, r.stdout + r.stderr
  assert 'every image decodes' in r.stdout and r.stdout.strip().endswith('OK')


def test_data_check_wrong_input_is_one_line(tmp_path):
  r = _check('--config', 'configs/ssil_imagenet.py:smoke', f'--config.dataset.root={tmp_path}/nothing')
  assert r.returncode == 1 and 'error: image folder' in r.stdout and 'does not exist' in r.stdout
  r = _check('--config', 'configs/ssil_imagenet.py', '--config.dataset.rooot=x')
  assert r.returncode == 2 and "unknown config field 'dataset.rooot'" in r.stderr


# --- runs on each reader ---------------------------------------------------------------------------

def _run(config, arg, workdir, tasks, **overrides):
  import json
  from cil_jax.engine import train
  from tests.helpers import check_summary, load_config
  c = load_config(config, arg, **overrides)
  train.train_and_evaluate(c, str(workdir))
  with open(os.path.join(workdir, 'results.json')) as f:
    summary = json.load(f)
  check_summary(summary, tasks)
  return c, summary


def test_ssil_landmarks_smoke_run_on_the_class_folder_tree(gld, tmp_path):
  c, _ = _run('ssil_landmarks.py', '10k,smoke', tmp_path / 'run', 2,
                **{'dataset.root': str(gld['tree']), 'train.batch_size': 2, 'train.replay_batch_size': 2})
  assert c.dataset.name == 'landmarks_v2_10k'


def test_mgrb_miniimagenet_smoke_run_with_its_transforms(mini_mgrb, tmp_path):
  c, _ = _run('mgrb_miniimagenet.py', 'wordnet,2/1,smoke', tmp_path / 'run', 3,
                **{'dataset.root': str(mini_mgrb), 'train.batch_size': 4, 'model.name': 'small_convnet'})
  assert c.dataset.augment == 'flip_rotate' and c.method.balanced_augment   # (the small model: the data is the test)


def test_mgrb_imagenet100_smoke_run_over_a_class_list(imagenet_dir, tmp_path):
  listed = tmp_path / 'classes.txt'
  listed.write_text('n00000000\nn00000001\nn00000002\nn00000003\n')
  c, _ = _run('mgrb_imagenet100.py', 'vis,2/1,smoke', tmp_path / 'run', 3,
                    **{'dataset.root': imagenet_dir, 'dataset.class_list': str(listed), 'dataset.image_size': 32,
                       'scenario.class_order': 'facil', 'model.name': 'small_convnet'})
  assert c.dataset.augment == 'imagenet_rotate'


def test_landmarks_configs_follow_the_ssil_table(tmp_path):
  from tests.helpers import load_config
  c = load_config('ssil_landmarks.py', '10k')
  assert (c.dataset.name, c.scenario.base, c.scenario.step, c.memory.size) == ('landmarks_v2_10k', 1000, 1000, 60000)
  assert (c.model.name, c.train.epochs, c.train.factor, c.train.replay_batch_size) == ('resnet18', 100, 4, 32)
  c = load_config('icarl_landmarks.py', '1K,t20,m5000')
  assert (c.dataset.name, c.scenario.base, c.memory.size, c.method.name) == ('landmarks_v2_1k', 50, 5000, 'icarl')
  with pytest.raises(ValueError, match='give one of 1k or 10k'):
    load_config('ssil_landmarks.py', '1k,10k')
  with pytest.raises(ValueError, match='take 1k or 10k'):
    load_config('ssil_landmarks.py', '10000')


def test_host_passes_fetch_only_the_outputs_asked_for(idx_dir, tmp_path):
  """TaskContext.outputs(keys=...): the engine's pass returns only those arrays, the same values."""
  from cil_jax.engine import train
  from tests.helpers import load_config
  exp = train.Experiment(load_config('default.py', 'smoke', **{'dataset.root': idx_dir}), str(tmp_path))
  state, _ = exp.init_state()
  idx = np.arange(37)
  both = exp.evaluator.outputs(state, idx, augment=False, seed=0, eval_batch=16)
  feats = exp.evaluator.outputs(state, idx, augment=False, seed=0, eval_batch=16, keys=('features',))
  assert set(both) == {'logits', 'features'} and set(feats) == {'features'}
  assert feats['features'].shape[0] == 37 and both['logits'].shape == (37, 10)
  np.testing.assert_array_equal(feats['features'], both['features'])


def test_data_check_miniimagenet_names_every_bad_file(mini_mgrb, tmp_path):
  root, bad = _mini_with_bad_files(mini_mgrb, tmp_path, [('train', 0, 1), ('test', 3, 2)])
  r = _check('--config', 'configs/mgrb_miniimagenet.py:wordnet', f'--config.dataset.root={root}')
  assert r.returncode == 1, r.stdout + r.stderr
  assert all(f'cannot decode: {b}' in r.stdout for b in bad) and '2 of 36 images do not decode' in r.stdout
  assert 'layout: train/ + test/ class folders' in r.stdout and "not miniImageNet's" not in r.stdout


def test_the_decoding_pass_drops_libjpegs_lines_and_keeps_the_rest_of_stderr(capfd):
  from cil_jax.native_output import native_output_filtered
  with native_output_filtered(2, data._libjpeg_line):
    os.write(2, b'Improper call to JPEG library in state 201\nsomething else went wrong\n')
    os.write(2, b'Premature end of JPEG file\nand this\n')
  assert capfd.readouterr().err == 'something else went wrong\nand this\n'
