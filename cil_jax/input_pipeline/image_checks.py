"""Which images cannot be read, and what to do about one: the explanation of a tf.data failure
(check_image, find_bad_image), the start-time header check of file splits (header_problem,
unreadable_images) and the fix a run names (bad_image_fix)."""
from __future__ import annotations

import os

import numpy as np

from cil_jax.input_pipeline.base import Split

NOT_PERMITTED = 'permission denied for user'   # check_image's words for a file this user may not read


def bad_image_fix(split: Split, problem: str = '') -> str:
  """What to do about an unreadable image a run found in `split` (check_image's `problem`; the
  fingerprint makes a removed file, or a tfds copy prepared again, a new dataset)."""
  if NOT_PERMITTED in problem:
    return ('make it readable for that user (chmod, chown), then rerun the same command to resume from the last '
            'checkpoint')
  if split.files is None:
    return ('the tfds copy holds an unreadable record: prepare it again, then start in a new --workdir (the '
            'data changed)')
  return ('replace it with a readable image at the same path, then rerun the same command to resume (a removed '
          'file changes the dataset: that needs a new --workdir); `cil-jax data check` with '
          'the same config lists every unreadable file')


def check_image(split: Split, i: int) -> str | None:
  """None when example i decodes, else a message naming it (used to explain a tf.data failure)."""
  if split.images is not None:
    return None
  from PIL import Image
  try:
    if split.files is not None:
      with Image.open(str(split.files[i])) as im:
        im.load()
    else:
      import io
      with Image.open(io.BytesIO(split.records[i]['image'])) as im:
        im.load()
  except PermissionError:   # the file is fine: this user may not read it
    from cil_jax.errors import user
    return f'cannot read image {split.describe(i)} ({NOT_PERMITTED} {user()})'
  except Exception as e:  # noqa: BLE001 - any decoder failure means the image is unusable
    return f'corrupt or unreadable image {split.describe(i)} ({type(e).__name__}: {e})'
  return None


# The formats tf.io.decode_image tells apart by their first bytes (JPEG XL has no PIL reader here)
_SIGNATURES = ((b'\xff\xd8\xff', 'JPEG'), (b'\x89PNG\r\n\x1a\n', 'PNG'), (b'GIF8', 'GIF'), (b'BM', 'BMP'),
               (b'\xff\x0a', 'JPEG XL'), (b'\x00\x00\x00\x0cJXL ', 'JPEG XL'))


def _image_kind(head: bytes) -> str | None:
  if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
    return 'WebP'
  return next((kind for magic, kind in _SIGNATURES if head.startswith(magic)), None)


def header_problem(path: str) -> str | None:
  """None when the file exists, is not empty, starts as a format the decoder reads and its header
  parses (PIL reads the header, not the pixels); else what is wrong. A full decode is the data
  check's job (`cil-jax data check`)."""
  from PIL import Image
  kind = None
  try:
    with open(path, 'rb') as f:
      if hasattr(os, 'posix_fadvise'):   # no read-ahead of the pixels: a quarter of the bytes read (measured)
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
      head = f.read(16)
      if not head:
        return 'an empty file'
      kind = _image_kind(head)
      if kind is None:
        return f'not a JPEG, PNG, GIF, BMP or WebP file: it starts with {head[:8]!r}'
      if kind != 'JPEG XL':
        f.seek(0)
        with Image.open(f) as im:
          if min(im.size) < 1:
            return f'a {kind} header of size {im.size}'
  except FileNotFoundError:
    return 'missing'
  except Image.DecompressionBombError:   # a header that parsed, of a very large image: decodable
    return None
  except OSError as e:
    if kind is None:
      return f'unreadable: {e.strerror or e}'
    return f'its {kind} header does not parse ({type(e).__name__}: {e})'
  except Exception as e:  # noqa: BLE001 - any parser failure: the decoder would fail too
    return f'its {kind} header does not parse ({type(e).__name__}: {e})'
  return None


def unreadable_images(split: Split, indices=None, threads: int = 32) -> list[str]:
  """'path (why)' of every image among `indices` (default: all) of a file split that header_problem
  rejects, in index order; [] for in-memory and tfds splits. Threads: the checks wait on the disk."""
  if split.files is None:
    return []
  import concurrent.futures
  idx = np.arange(len(split)) if indices is None else np.asarray(indices, np.int64).reshape(-1)
  paths = [str(p) for p in split.files[idx]]
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    problems = list(pool.map(header_problem, paths, chunksize=256))
  return [f'{p} ({why})' for p, why in zip(paths, problems) if why]


def find_bad_image(split: Split, indices) -> str | None:
  """The message of the first unreadable image among `indices`, else None: lets any pass that
  tf.data failed in (training, evaluation, host-side passes) name the file to fix."""
  if split.images is not None:
    return None
  for i in np.asarray(indices, np.int64).reshape(-1):
    problem = check_image(split, int(i))
    if problem:
      return problem
  return None

