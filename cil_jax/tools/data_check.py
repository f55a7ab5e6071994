"""Checks a dataset once before a long run: what the config's reader finds, against what the
dataset should hold, and every image decoded with the decoder training uses.

  cil-jax data check --config configs/ssil_imagenet.py --config.dataset.root=/data/imagenet
  cil-jax data check --config configs/ssil_landmarks.py:10k --config.dataset.root=/data/gldv2 --out report/

Prints the images and classes of each split against the full dataset's numbers, the smallest and
largest classes, Landmarks' selected classes (with the counts at the cut), non-image files in class
folders, and every file that does not decode (all of them, with their paths). --out DIR also writes
classes.tsv (label, class, train, test images) and bad_files.txt. Exit status 0 when all is well, 1
when something needs fixing.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import os
import sys
import time

import numpy as np

from cil_jax import command_line
from cil_jax.engine import workdir as workdir_lib
from cil_jax.engine.progress import Progress
from cil_jax.native_output import native_output_filtered

# dataset.name -> (classes, train images, test images) of the full dataset; None where it has no
# fixed size
EXPECTED = {
    'imagenet': (1000, 1281167, 50000),
    'imagenet100': (100, None, 5000),
    'miniimagenet': (100, 50000, 10000),
    'cifar10': (10, 50000, 10000),
    'cifar100': (100, 50000, 10000),
    'fashion_mnist': (10, 60000, 10000),
    'landmarks_v2_1k': (1000, None, 50000),
    'landmarks_v2_10k': (10000, None, 100000),
}
# LUCIR's subset: the 128,856 lines of the imagenet-sub train list that PyCIL's maintainers point to
# (FOSTER's repository), which is LUCIR's seed-1993 draw of classes with every training image
IMAGENET100_TRAIN = {'lucir': 128856}


def expected_counts(cfg) -> tuple[int | None, int | None, int | None]:
  classes, train, test = EXPECTED.get(cfg.name, (None, None, None))
  if cfg.name == 'imagenet100':   # ImageNet's val set: 50 images per class
    from cil_jax.input_pipeline import imagenet100
    classes = len(imagenet100.listed_wnids(cfg))
    train, test = IMAGENET100_TRAIN.get(cfg.get('class_list') or 'lucir'), 50 * classes
  if cfg.name.startswith('landmarks') and int(cfg.get('num_classes') or 0):   # fewer classes kept
    per = test // classes
    classes = int(cfg.num_classes)
    test = classes * per
  if cfg.name == 'imagenet' and int(cfg.get('num_classes') or 1000) != 1000:
    return int(cfg.num_classes), None, None
  return classes, train, test


def _decoder():
  from cil_jax.errors import one_line
  from cil_jax.input_pipeline import streams
  tf = streams.tensorflow()

  def decode(data: bytes) -> str | None:
    try:
      image = tf.io.decode_image(data, channels=3, expand_animations=False)
      if image.shape[0] == 0 or image.shape[1] == 0:
        return 'empty image'
    except Exception as e:  # noqa: BLE001 - any decoder failure: the image is unusable
      return one_line(e)
    return None
  return decode


def _libjpeg_line(line: str) -> bool:
  return 'JPEG library' in line or line.startswith(('Corrupt JPEG data', 'Premature end of JPEG', 'Invalid JPEG',
                                                    'Not a JPEG file', 'Bogus ', 'Unsupported JPEG'))


def undecodable(split, what: str, threads: int) -> list[str]:
  """'path (why)' of every image of a file or record split that the training decoder rejects."""
  if split.images is not None or len(split) == 0:
    return []
  decode = _decoder()

  def check(i: int) -> str | None:
    try:
      if split.files is not None:
        with open(str(split.files[i]), 'rb') as f:
          data = f.read()
      else:
        data = bytes(split.records[i]['image'])
    except OSError as e:
      return f'{split.describe(i)} (unreadable: {e.strerror or e})'
    why = decode(data)
    return None if why is None else f'{split.describe(i)} ({why})'

  # libjpeg prints e.g. 'Improper call to JPEG library in state 201' to stderr for every file TF's
  # decoder rejects: those lines are dropped (each rejected file is reported here with its reason), the
  # rest of stderr is written after the pass; the bar goes to stdout. TF's decoder releases the GIL.
  progress, bad, done, shown = Progress(sys.stdout), [], 0, -1
  progress.mark(0)
  with native_output_filtered(2, _libjpeg_line), concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for start in range(0, len(split), 4096):   # a bounded number of pending tasks (ImageNet: 1.3 M)
      for problem in pool.map(check, range(start, min(start + 4096, len(split)))):
        done += 1
        if problem:
          bad.append(problem)
      tenth = 10 * done // len(split)
      if progress.tty or tenth != shown:   # redrawn on a terminal, a line each 10 % otherwise
        progress.update(f'decoding {what}', done, len(split), done, {})
        shown = tenth
  progress.end()
  return bad


def non_images(split) -> list[str]:
  """Files other than images next to a file split's images (class folders only)."""
  if split.files is None or len(split) == 0:
    return []
  from cil_jax.input_pipeline.base import IMAGE_EXTENSIONS
  folders = sorted({os.path.dirname(str(f)) for f in split.files})
  if len(folders) > 20000:   # GLDv2's nested train/a/b/c folders are named by the csv, not listed
    return []
  out = []
  for folder in folders:
    for name in sorted(os.listdir(folder)):
      path = os.path.join(folder, name)
      if not name.startswith('.') and os.path.isfile(path) and not name.lower().endswith(IMAGE_EXTENSIONS) \
          and not name.endswith('_boxes.txt'):
        out.append(path)
  return out


def _compare(what: str, found: int, expected: int | None) -> tuple[str, bool]:
  if expected is None:
    return f'{what}: {found}', True
  ok = found == expected
  return f'{what}: {found}' + (' (as expected)' if ok else f' (the full dataset has {expected})'), ok


def check(config, threads: int, out_dir: str = '', decode: bool = True) -> bool:
  """Prints the report; True when nothing needs fixing."""
  from cil_jax.input_pipeline import sources
  cfg = config.dataset
  print(f'dataset {cfg.name}' + (f' at {cfg.root}' if cfg.get('root') else ''), flush=True)
  t0 = time.perf_counter()
  ok = True
  if cfg.name.startswith('landmarks'):
    source, ok = _landmarks_report(cfg)
  elif cfg.name == 'miniimagenet':   # the files, so that the decoding pass below names every bad one
    source, ok = _miniimagenet_report(cfg)
  else:
    source = sources.load(cfg)
  print(f'read in {time.perf_counter() - t0:.1f} s', flush=True)
  classes, train_n, test_n = expected_counts(cfg)
  if int(cfg.get('max_per_class') or 0):   # the config keeps part of each class on purpose
    train_n = None
  if int(cfg.get('max_test_per_class') or 0) and test_n and classes:   # every full test set is balanced
    test_n = classes * min(test_n // classes, int(cfg.max_test_per_class))
  lines = []
  for line, good in (_compare('classes', source.num_classes, classes),
                     _compare('train images', len(source.train), train_n),
                     _compare('test images', len(source.test), test_n)):
    lines.append(line)
    ok &= good
  print('\n'.join(lines))
  counts = {}
  for name, split in (('train', source.train), ('test', source.test)):
    c = np.bincount(split.labels, minlength=source.num_classes)
    counts[name] = c
    empty = np.flatnonzero(c == 0)
    names = source.class_names or tuple(str(k) for k in range(source.num_classes))
    lo, hi = int(np.argmin(c)), int(np.argmax(c))
    print(f'{name}: {c.min()} images in every class' if c.min() == c.max() else
          f'{name}: {c.min()} to {c.max()} images per class (smallest {names[lo]}, largest {names[hi]})')
    if len(empty):
      ok = False
      print(f'{name}: {len(empty)} classes have no images: ' + ', '.join(names[k] for k in empty))
  if int(cfg.get('max_per_class') or 0):
    print(f'note: dataset.max_per_class={cfg.max_per_class} keeps only the first images of each class')
  if int(cfg.get('max_test_per_class') or 0):
    print(f'note: dataset.max_test_per_class={cfg.max_test_per_class} keeps only the first test images of each class')
  other = non_images(source.train) + non_images(source.test)
  for path in other:
    print(f'not an image (ignored by the reader): {path}')
  bad = []
  if decode:
    bad = undecodable(source.train, 'train', threads) + undecodable(source.test, 'test', threads)
    for problem in bad:
      print(f'cannot decode: {problem}')
    print(f'{len(bad)} of {len(source.train) + len(source.test)} images do not decode' if bad else
          'every image decodes' if source.train.images is None else 'images are decoded by the reader (in memory)')
  ok &= not bad
  if out_dir:
    os.makedirs(out_dir, exist_ok=True)
    names = source.class_names or tuple(str(k) for k in range(source.num_classes))
    with open(os.path.join(out_dir, 'classes.tsv'), 'w') as f:
      f.write('label\tclass\ttrain\ttest\n')
      for k in range(source.num_classes):
        f.write(f'{k}\t{names[k]}\t{counts["train"][k]}\t{counts["test"][k]}\n')
    with open(os.path.join(out_dir, 'bad_files.txt'), 'w') as f:
      f.write(''.join(p + '\n' for p in bad + [f'{p} (not an image)' for p in other]))
    print(f'wrote {os.path.join(out_dir, "classes.tsv")} and {os.path.join(out_dir, "bad_files.txt")}')
  print(('OK' + ('' if decode else ' (images not decoded: --no-decode)')) if ok else 'PROBLEMS FOUND (see above)')
  return ok


def _miniimagenet_report(cfg):
  """miniImageNet's files (the reader decodes them into memory), and whether its classes are Ravi &
  Larochelle's 100."""
  from cil_jax.input_pipeline import class_lists, miniimagenet
  train, test, wnids, layout = miniimagenet.file_splits(cfg)
  print(f'layout: {layout}')
  other = sorted(set(wnids) - set(class_lists.MINIIMAGENET))
  if other:
    print(f'{len(other)} classes are not miniImageNet\'s (Ravi & Larochelle\'s 100): ' + ', '.join(other))
  return miniimagenet.source_of(cfg, train, test, wnids), not other


def _landmarks_report(cfg):
  """Landmarks: the selection (the largest and smallest kept classes, missing files); (the source
  of the files that are there, whether none is missing)."""
  from cil_jax.input_pipeline import landmarks
  from cil_jax.input_pipeline.base import take
  s = landmarks.selection(cfg, cfg.name)
  kept, counts = s['kept'], s['counts']
  print(f'{s["layout"]}: {s["total_classes"]} classes, the {s["num_classes"]} with the most images kept '
        f'(relabelled by decreasing count, equal counts: the later name first), {s["test_per_class"]} test images each')
  shown = min(5, len(kept))
  print('largest: ' + ', '.join(f'{kept[k]} ({counts[k]})' for k in range(shown)))
  print('smallest kept: ' + ', '.join(f'{kept[k]} ({counts[k]})' for k in range(len(kept) - shown, len(kept))))
  missing = landmarks.missing_in(s)
  for path in missing:
    print(f'missing: {path}')
  if missing:
    print(f'{len(missing)} images of the selected classes are missing')
    for part in ('train', 'test'):   # the rest is still decoded
      s[part] = take(s[part], np.flatnonzero(~np.isin(s[part].files, missing)))
  return landmarks.source_of(cfg, cfg.name, s), not missing


def _number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def main(argv=None, prog='cil-jax data') -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] != 'check':
    asked = len(argv) > 1 and argv[1] in ('-h', '--help', 'help')
    print(__doc__.strip().replace('cil-jax data', prog), file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2
  argv = [argv[0]] + argv[2:]
  p = argparse.ArgumentParser(prog=f'{prog} check', description='Checks a dataset (see the module doc).',
                              epilog="The dataset is the one a run would read: the train command's --config "
                                     'FILE[:ARG] and --config.<field>=value flags, e.g. --config ssil_imagenet '
                                     '--config.dataset.root=/data/imagenet.')
  p.add_argument('--threads', type=int, default=0, help='decoding threads (default: 2 per core)')
  p.add_argument('--out', default='', help='also write classes.tsv and bad_files.txt into this folder')
  p.add_argument('--no-decode', action='store_true', help='count only; do not decode every image')
  known, rest = p.parse_known_args(argv[1:])
  stray = [a for i, a in enumerate(rest)   # a value must follow a flag written without '='
           if not a.startswith('-') and not (i and rest[i - 1].startswith('-') and '=' not in rest[i - 1])]
  if known.threads < 0:
    p.error(f'--threads={known.threads}: give a number of threads, or 0 for 2 per core')
  out_problem = known.out and workdir_lib.folder_problem(known.out)
  if out_problem:
    p.error(f'--out {known.out} {out_problem}; give a folder (classes.tsv and bad_files.txt go into it)')
  unwritable = known.out and workdir_lib.cannot_write(known.out, '--out')
  if unwritable:   # a read-only or unwritable folder: one line, before the data is read
    print(f'error: {unwritable}', file=sys.stderr)
    return 2
  from absl import flags
  unknown = [name for name in (a.split('=')[0] for a in rest if a.startswith('-'))
             if name != '--config' and not name.startswith('--config.') and name.lstrip('-') not in flags.FLAGS
             and name not in ('--flagfile', '--undefok', '--helpfull', '--helpshort') and not _number(name)]
  # (absl's own flags pass, and so does a negative value written after its flag)
  if unknown:
    close = difflib.get_close_matches(unknown[0], ['--threads', '--out', '--no-decode', '--config'], n=1)
    p.error(f'unknown option {unknown[0]}' + (f'; did you mean {close[0]}?' if close else ''))
  if stray:
    p.error(f'unexpected argument {stray[0]!r}: the dataset comes from --config FILE and --config.<field>=value')
  try:
    rest, _ = command_line.check_command_line([argv[0]] + rest)
  except (ValueError, TypeError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  command_line.define_config_flag()
  command_line.parse_flags(rest)
  from cil_jax.input_pipeline.base import DataError
  threads = known.threads or 2 * (os.cpu_count() or 1)
  try:
    return 0 if check(flags.FLAGS.config, threads, known.out, decode=not known.no_decode) else 1
  except OSError as e:   # --out on a full disk, or a folder gone read-only after the check: one line
    from cil_jax import errors
    written = os.path.join(known.out, 'classes.tsv') if known.out else None
    line = errors.os_line(e, then='run the same command again', path=written)
    if line is None:
      raise
    print(line, file=sys.stderr)
    return 1
  except DataError as e:
    print(f'error: {e}')
    print('PROBLEMS FOUND (see above)')
    return 1


if __name__ == '__main__':
  sys.exit(main())
