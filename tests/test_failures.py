"""What a cluster throws at a run, each as one line with its exit status and the fix, nothing computed
lost: a full disk during a checkpoint, a read-only or unwritable workdir (or its parent, or the --out of
a report or a data check), a data file this user may not read (at the start and during training). Each
is tested with the real failure where this machine allows it (a small tmpfs, a read-only bind mount, a
run as user nobody: CI runs as root, so chmod alone proves nothing), and by injection everywhere. (A
lost process under the launcher: tests/test_multiprocess.py.)"""
import contextlib
import errno
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np
import pytest

from cil_jax.tools import data_check as data
from cil_jax import errors
from cil_jax.tools import report
from cil_jax.engine import workdir as workdir_lib
from cil_jax.input_pipeline import image_checks
from cil_jax.input_pipeline.base import Split
from test_workdir import _error, _main, _tree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = ('--config', 'configs/default.py:smoke')
RESUME = 'then rerun the same command to resume from the last checkpoint'
NOBODY = 65534


def _same_results(reference, workdir):
  """results.json equal in every field but the wall time."""
  want, got = (json.load(open(os.path.join(w, 'results.json'))) for w in (reference, workdir))
  want.pop('wall_time', None), got.pop('wall_time', None)
  assert got == want


def _sh(*cmd):
  return subprocess.run(cmd, capture_output=True, text=True)


@contextlib.contextmanager
def _mounted(*cmds):
  """Runs the mount commands (the last argument of the first is the mount point), unmounts at the end;
  skips the test where this machine gives no mount rights (its injected variant runs everywhere)."""
  point = cmds[0][-1]
  r = _sh(*cmds[0]) if shutil.which('mount') else types.SimpleNamespace(returncode=1, stderr='no mount command')
  if r.returncode:
    pytest.skip(f'no mount rights here ({r.stderr.strip()}); the injected variant covers this')
  try:
    for cmd in cmds[1:]:
      r = _sh(*cmd)
      if r.returncode:
        pytest.skip(f'{" ".join(cmd[:3])} is not allowed here ({r.stderr.strip()}); the injected variant covers this')
    yield point
  finally:
    if _sh('umount', point).returncode:
      _sh('umount', '-l', point)


def _read_only_view(src, view):
  view.mkdir(exist_ok=True)
  return _mounted(('mount', '--bind', str(src), str(view)), ('mount', '-o', 'remount,bind,ro', str(view)))


def _disk_use(path):
  """Bytes the files under path take on disk (whole blocks, as a tmpfs counts pages)."""
  return sum(os.stat(os.path.join(d, f)).st_blocks * 512 for d, _, files in os.walk(path) for f in files)


@pytest.fixture(scope='module')
def reference_run(tmp_path_factory, idx_dir):
  """The uninterrupted default.py:smoke run every resume must end equal to: (workdir, data root)."""
  w = str(tmp_path_factory.mktemp('reference') / 'w')
  r, _ = _main(*SMOKE, f'--config.dataset.root={idx_dir}', '--workdir', w)
  assert r.returncode == 0, r.stderr[-3000:]
  return w, idx_dir


# --- a full disk ---------------------------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_resume_ends_equal(reference_run, tmp_path):
  """A tmpfs the size of the finished reference workdir: the first checkpoints fit, a later one does
  not (three coexist while the oldest waits for the newest to commit). Orbax's save threads stay
  quiet; after the disk grows, the same command resumes from the last checkpoint and ends as the
  uninterrupted run."""
  reference, root = reference_run
  disk = tmp_path / 'disk'
  disk.mkdir()
  size = _disk_use(reference) // 1024
  with _mounted(('mount', '-t', 'tmpfs', '-o', f'size={size}k', 'tmpfs', str(disk))):
    w = disk / 'w'
    args = (*SMOKE, f'--config.dataset.root={root}', '--workdir', str(w))
    r, _ = _main(*args)
    assert r.returncode == 1, r.stderr[-3000:]
    line = _error(r)   # one line: no Orbax thread tracebacks, no RESOURCE_EXHAUSTED text
    ckpts = w / 'checkpoints'
    assert line == f'error: no space left on the device ({ckpts}); free space in {ckpts}, {RESUME}', line
    assert any(n.isdigit() for n in os.listdir(ckpts)), os.listdir(ckpts)   # the last good checkpoint stays
    assert line in (w / 'log.txt').read_text()   # the log's writes fail quietly while the disk is full
    assert _sh('mount', '-o', f'remount,size={4 * size}k', str(disk)).returncode == 0   # space freed
    r, _ = _main(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'resumed from checkpoint' in r.stderr
    assert sorted(os.listdir(ckpts)) == ['10', '9']   # the failed save's temporary folder is gone
    _same_results(reference, w)


# A run of main.py with a failure injected (where the real one cannot be made): CIL_JAX_TEST_INJECT
# holds what to inject, as JSON.
INJECT = r'''
import errno, json, os, runpy, sys
spec = json.loads(os.environ.pop('CIL_JAX_TEST_INJECT'))
if 'full_disk_at_save' in spec:   # TensorStore's error, logged with its traceback by a thread as Orbax does
  from absl import logging
  from cil_jax.engine import checkpoint
  save, calls = checkpoint.Checkpointer.save, []
  def failing_save(self, arrays, meta):
    calls.append(1)
    if len(calls) == spec['full_disk_at_save']:
      where = os.path.join(str(self.manager.directory), f'{len(calls)}.orbax-checkpoint-tmp', 'arrays', 'd', 'f0')
      e = ValueError(f'RESOURCE_EXHAUSTED: Error writing "state.params/0" in OCDBT database: Failed writing: '
                     f'"{where}": Failed to write 4096 bytes to file 9: No space left on device [os_error_code=\'28\']')
      try:
        raise e
      except ValueError:
        logging.exception('_SignalingThread.run() raised an exception: %s', e)
      raise e
    return save(self, arrays, meta)
  checkpoint.Checkpointer.save = failing_save
if 'unreadable' in spec:   # as a file this user may not read (root reads everything)
  import builtins
  bad, real_open, real_access = spec['unreadable'], builtins.open, os.access
  def guarded_open(file, *args, **kwargs):
    if str(file) == bad:
      raise PermissionError(errno.EACCES, 'Permission denied', bad)
    return real_open(file, *args, **kwargs)
  builtins.open = guarded_open
  os.access = lambda path, mode, **kw: (str(path) != bad or not mode & os.R_OK) and real_access(path, mode, **kw)
sys.argv = ['main.py', *sys.argv[1:]]
runpy.run_path('main.py', run_name='__main__')
'''


def _injected(spec, *args):
  env = dict(os.environ, CIL_JAX_TEST_INJECT=json.dumps(spec))
  return subprocess.run([sys.executable, '-c', INJECT, *args], cwd=ROOT, capture_output=True, text=True,
                        timeout=300, env=env)


def test_a_full_disk_injected_is_one_line_and_the_resume_ends_equal(reference_run, tmp_path):
  reference, root = reference_run
  w = tmp_path / 'w'
  args = (*SMOKE, f'--config.dataset.root={root}', '--workdir', str(w))
  r = _injected({'full_disk_at_save': 3}, *args)
  assert r.returncode == 1, r.stderr[-3000:]
  ckpts = w / 'checkpoints'
  assert _error(r) == f'error: no space left on the device ({ckpts}); free space in {ckpts}, {RESUME}'
  assert sorted(os.listdir(ckpts)) == ['1', '2']
  r, _ = _main(*args)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint 2: ' in r.stderr
  _same_results(reference, w)


def test_the_log_on_a_full_disk_fails_quietly(tmp_path, capsys):
  """log.txt on /dev/full (every write: ENOSPC): the session goes on, the terminal shows everything."""
  from cil_jax.engine import run_log
  if not os.path.exists('/dev/full'):
    pytest.skip('no /dev/full here')
  (tmp_path / run_log.NAME).symlink_to('/dev/full')
  log = run_log.RunLog(str(tmp_path), ['main.py'])
  try:
    print('still shown')
    log.note('error: the line that ends the session')
  finally:
    log.close()
  assert 'still shown' in capsys.readouterr().out


def test_file_system_errors_are_one_line_each(tmp_path, monkeypatch):
  """error_line for each refusal, as an OSError in the chain or as TensorStore's text."""
  line = errors.error_line
  tensorstore = ValueError(f'PERMISSION_DENIED: Error writing "x" in OCDBT database at local file "{tmp_path}/w/'
                           f'checkpoints/4.orbax-checkpoint-tmp/arrays/": Failed writing: "{tmp_path}/w/checkpoints/'
                           '4.orbax-checkpoint-tmp/arrays/d/ab": Read-only file system [os_error_code=\'30\']')
  assert line(tensorstore) == (f'error: cannot write to {tmp_path}/w/checkpoints (read-only file system); make it '
                               f'writable, {RESUME}')
  quota = RuntimeError('async save failed')
  quota.__cause__ = OSError(errno.EDQUOT, 'Disk quota exceeded', f'{tmp_path}/w/results.json.tmp')
  assert line(quota) == (f'error: disk quota exceeded ({tmp_path}/w); free space in {tmp_path}/w or raise the '
                         f'quota, {RESUME}')
  user = pwd.getpwuid(os.geteuid()).pw_name
  assert line(PermissionError(errno.EACCES, 'Permission denied', f'{tmp_path}/w/lock')) == (
      f'error: cannot write to {tmp_path}/w (permission denied for user {user}); make it writable for that user, '
      f'{RESUME}')
  unreadable = tmp_path / 'train-images-idx3-ubyte.gz'
  unreadable.write_bytes(b'')
  monkeypatch.setattr(os, 'access', lambda path, mode: str(path) != str(unreadable))
  assert line(PermissionError(errno.EACCES, 'Permission denied', str(unreadable))) == (
      f'error: cannot read {unreadable} (permission denied for user {user}); make it readable for that user (chmod, '
      f'chown), {RESUME}')
  assert line(KeyError('a bug')) is None


def test_orbax_threads_stay_quiet_about_a_refused_write(monkeypatch, caplog, capsys):
  """Their log records of it (the main thread raises it again) and the closed event loop's callbacks."""
  import logging
  monkeypatch.setattr(sys, 'unraisablehook', sys.unraisablehook)   # restored after the test
  errors.quiet_background_os_errors()
  try:
    for e in (OSError(errno.ENOSPC, 'No space left on device', '/w/checkpoints/3.orbax-checkpoint-tmp/a'),
              KeyError('a bug')):
      try:
        raise e
      except Exception:  # noqa: BLE001
        logging.getLogger('absl').exception('_SignalingThread.run() raised an exception')
        logging.getLogger('asyncio').error('Task exception was never retrieved', exc_info=True)
    sys.unraisablehook(types.SimpleNamespace(exc_type=RuntimeError, exc_value=RuntimeError('Event loop is closed'),
                                             exc_traceback=None, err_msg=None, object=None))
  finally:
    for name in ('absl', 'asyncio'):
      logging.getLogger(name).removeFilter(errors._quiet)
  assert [r.exc_info[0] for r in caplog.records] == [KeyError, KeyError]   # a bug's records stay
  assert 'Event loop' not in capsys.readouterr().err


# --- read-only and unwritable folders -----------------------------------------------------------

@pytest.fixture
def read_only(reference_run, tmp_path):
  """A read-only bind mount of a folder that holds an empty folder and copies of the finished reference run,
  whole and as if stopped before its end."""
  src = tmp_path / 'src'
  (src / 'existing').mkdir(parents=True)
  shutil.copytree(reference_run[0], src / 'done')
  shutil.copytree(reference_run[0], src / 'unfinished')
  (src / 'unfinished' / 'results.json').unlink()   # as a run stopped before its end
  with _read_only_view(src, tmp_path / 'view') as view:
    yield types.SimpleNamespace(src=src, view=view, root=reference_run[1])


def test_a_read_only_workdir_or_parent_is_one_line_before_jax_and_a_finished_run_still_prints(read_only):
  view, before = read_only.view, _tree(read_only.src)
  for w, line in ((f'{view}/existing', f'error: cannot write to {view}/existing (read-only file system); pass a '
                                       'writable --workdir'),
                  (f'{view}/new', f'error: cannot write to {view} (read-only file system), where {view}/new would '
                                  'be made; pass a writable --workdir'),
                  (f'{view}/unfinished', f'error: cannot write to {view}/unfinished (read-only file system), so the '
                                         'run it holds cannot resume; make it writable, or copy it to a writable '
                                         'place and pass that as --workdir')):
    r, seconds = _main(*SMOKE, f'--config.dataset.root={read_only.root}', '--workdir', w)
    assert r.returncode == 1 and _error(r) == line, r.stderr[-3000:]
    assert seconds < 4, f'{seconds:.1f} s: the refusal must come before the heavy imports'
  r, _ = _main(*SMOKE, f'--config.dataset.root={read_only.root}', '--workdir', f'{view}/done')
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'holds this finished run' in r.stderr and 'average incremental accuracy' in r.stdout
  assert _tree(read_only.src) == before


def test_report_and_data_check_out_on_a_read_only_file_system_is_one_line(read_only):
  view = read_only.view
  r = subprocess.run([sys.executable, '-m', 'cil_jax', 'report', f'{view}/done', '--out', f'{view}/tables/'],
                     cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and _error(r) == (f'error: --out {view}/tables/: cannot write to {view} (read-only file '
                                             f'system), where {view}/tables would be made; pass a writable --out')
  r = subprocess.run([sys.executable, '-m', 'cil_jax', 'data', 'check', *SMOKE, f'--config.dataset.root={read_only.root}',
                      '--out', f'{view}/existing'], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 2 and _error(r) == (f'error: cannot write to {view}/existing (read-only file system); pass a '
                                             'writable --out')


def test_read_only_and_unwritable_folders_injected(reference_run, tmp_path, monkeypatch, capsys):
  """The same checks where no mount can be made: statvfs says read-only, access says no."""
  w, d = str(tmp_path / 'w'), str(tmp_path / 'out')
  os.mkdir(d)
  real_statvfs, real_access = os.statvfs, os.access
  monkeypatch.setattr(os, 'statvfs', lambda p: types.SimpleNamespace(f_flag=os.ST_RDONLY) if str(p).startswith(
      str(tmp_path)) else real_statvfs(p))
  with pytest.raises(workdir_lib.WorkdirError, match=rf'^cannot write to {tmp_path} \(read-only file system\), where '
                                                     rf'{w} would be made; pass a writable --workdir$'):
    workdir_lib.check_writable(w)
  shutil.copytree(reference_run[0], tmp_path / 'done')
  workdir_lib.check_writable(str(tmp_path / 'done'))   # a finished run is only read
  with pytest.raises(SystemExit) as e:
    report.main([reference_run[0], '--out', f'{d}/table'])
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == (f'error: --out {d}/table: cannot write to {d} (read-only file system); '
                                             'pass a writable --out')
  monkeypatch.setattr(os, 'statvfs', real_statvfs)
  monkeypatch.setattr(os, 'access', lambda p, mode: not str(p).startswith(str(tmp_path)) and real_access(p, mode))
  user = pwd.getpwuid(os.geteuid()).pw_name
  assert data.main(['data', 'check', *SMOKE, '--out', d]) == 2
  assert capsys.readouterr().err.strip() == (f'error: cannot write to {d} (permission denied for user {user}); pass '
                                             'a writable --out')
  with pytest.raises(workdir_lib.WorkdirError, match=rf'^cannot write to {w[:-2]} \(permission denied for user '):
    workdir_lib.check_writable(w)


# --- as a user without the permissions ------------------------------------------------------------

@pytest.fixture(scope='module')
def nobody(idx_dir, imagenet_dir):
  """Runs commands as user nobody (real permission errors: root passes every chmod), with copies of the
  fixture datasets it can read."""
  if os.geteuid() != 0 or not shutil.which('setpriv'):
    pytest.skip('needs root and setpriv to run as nobody')
  base = tempfile.mkdtemp(prefix='cil_jax_nobody_')
  os.chmod(base, 0o755)
  try:
    home = os.path.join(base, 'home')
    os.mkdir(home)
    os.chown(home, NOBODY, NOBODY)
    env = dict(os.environ, HOME=home)
    cache = env.get('JAX_COMPILATION_CACHE_DIR', '')
    if os.path.basename(cache).startswith('cil_jax_tests_xla_cache_'):   # the session's (conftest.py): shared,
      os.chmod(cache, 0o1777)                                             # its compiles are nobody's too
    else:
      env.pop('JAX_COMPILATION_CACHE_DIR', None)
    copies = {}
    for name, src in (('idx', idx_dir), ('imagenet', imagenet_dir)):
      copies[name] = os.path.join(base, name)
      shutil.copytree(src, copies[name])
      for d, _, _ in os.walk(copies[name]):
        os.chmod(d, 0o755)   # tmp_path's folders are root's alone
    cmd = ['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups']
    probe = subprocess.run([*cmd, sys.executable, '-c', 'import cil_jax, jax'], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    if probe.returncode:
      pytest.skip(f'user nobody cannot run this checkout: {probe.stderr.strip()[-300:]}')

    def run(*args, timeout=300):
      t0 = time.perf_counter()
      r = subprocess.run([*cmd, sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
      return r, time.perf_counter() - t0
    yield types.SimpleNamespace(base=base, run=run, user=pwd.getpwuid(NOBODY).pw_name, **copies)
  finally:
    shutil.rmtree(base, ignore_errors=True)


def test_an_unwritable_workdir_parent_or_out_is_one_line(nobody):
  mine = os.path.join(nobody.base, 'roots')   # root's, mode 755: nobody may not write there
  os.mkdir(mine)
  why = f'permission denied for user {nobody.user}'
  for w, line in ((mine, f'error: cannot write to {mine} ({why}); pass a writable --workdir'),
                  (f'{mine}/new', f'error: cannot write to {mine} ({why}), where {mine}/new would be made; pass a '
                                  'writable --workdir')):
    r, seconds = nobody.run('main.py', *SMOKE, f'--config.dataset.root={nobody.idx}', '--workdir', w)
    assert r.returncode == 1 and _error(r) == line, r.stderr[-3000:]
    assert seconds < 4, f'{seconds:.1f} s: the refusal must come before the heavy imports'
  r, _ = nobody.run('-m', 'cil_jax', 'report', mine, '--out', f'{mine}/table')
  assert r.returncode == 2 and _error(r) == f'error: --out {mine}/table: cannot write to {mine} ({why}); pass a ' \
                                            'writable --out'
  r, _ = nobody.run('-m', 'cil_jax', 'data', 'check', *SMOKE, '--out', f'{mine}/check')
  assert r.returncode == 2 and _error(r) == (f'error: cannot write to {mine} ({why}), where {mine}/check would be '
                                             'made; pass a writable --out')
  assert os.listdir(mine) == []


def test_a_data_file_this_user_may_not_read_is_one_line_at_the_start(nobody):
  root = os.path.join(nobody.base, 'idx_unreadable')
  shutil.copytree(nobody.idx, root)
  os.chmod(root, 0o755)
  bad = os.path.join(root, 'train-images-idx3-ubyte.gz')
  os.chmod(bad, 0)
  w = os.path.join(nobody.base, 'w_idx')
  os.mkdir(w)
  os.chown(w, NOBODY, NOBODY)
  r, _ = nobody.run('main.py', *SMOKE, f'--config.dataset.root={root}', '--workdir', w)
  assert r.returncode == 1 and _error(r) == (f'error: cannot read {bad} (permission denied for user {nobody.user}); '
                                             f'make it readable for that user (chmod, chown), {RESUME}')
  assert os.listdir(w) == []   # a failed start leaves no trace


def test_a_data_file_this_user_may_not_read_injected(idx_dir, tmp_path):
  root = tmp_path / 'idx'
  shutil.copytree(idx_dir, root)
  bad = str(root / 'train-images-idx3-ubyte.gz')
  w = tmp_path / 'w'
  r = _injected({'unreadable': bad}, *SMOKE, f'--config.dataset.root={root}', '--workdir', str(w))
  user = pwd.getpwuid(os.geteuid()).pw_name
  assert r.returncode == 1 and _error(r) == (f'error: cannot read {bad} (permission denied for user {user}); make it '
                                             f'readable for that user (chmod, chown), {RESUME}')
  assert not w.exists()


# ImageNet folders (read during training); task 2 holds n00000002 and n00000003; the small net compiles fast
IMAGENET = ('--config', 'configs/ssil_imagenet.py:smoke', '--config.scenario.class_order=identity',
            '--config.model.name=small_convnet')


def test_an_image_this_user_may_not_read_during_training_is_one_line_and_the_resume_ends_equal(nobody, tmp_path):
  """The second task's class n00000003 unreadable: the first task's checkpoints stay, the line names
  an image and the fix; readable again, the resume ends as the uninterrupted run (run as root)."""
  reference = tmp_path / 'reference'
  r, _ = _main(*IMAGENET, f'--config.dataset.root={nobody.imagenet}', '--workdir', str(reference))
  assert r.returncode == 0, r.stderr[-3000:]
  images = os.path.join(nobody.imagenet, 'train', 'n00000003')
  w = os.path.join(nobody.base, 'w_imagenet')
  os.mkdir(w)
  os.chown(w, NOBODY, NOBODY)
  args = ('main.py', *IMAGENET, f'--config.dataset.root={nobody.imagenet}', '--workdir', w)
  for f in os.listdir(images):
    os.chmod(os.path.join(images, f), 0)
  try:
    r, _ = nobody.run(*args)
  finally:
    for f in os.listdir(images):
      os.chmod(os.path.join(images, f), 0o644)
  assert r.returncode == 1, r.stderr[-3000:]
  line = _error(r)
  assert line.startswith(f'error: cannot read image {images}/n00000003_') and line.endswith(
      f'.JPEG (permission denied for user {nobody.user}); make it readable for that user (chmod, chown), {RESUME}'), line
  assert sorted(os.listdir(os.path.join(w, 'checkpoints'))) == ['1', '2']   # the first task's
  r, _ = nobody.run(*args)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint 2: task 2/2' in r.stderr
  _same_results(reference, w)


def test_an_image_this_user_may_not_read_injected(imagenet_dir, monkeypatch):
  """check_image's words and fix for a file it may not open (PIL opens it with the built-in open)."""
  import builtins
  files = sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(imagenet_dir, 'train')) for f in fs)
  split = Split(labels=np.zeros(len(files), np.int64), files=np.asarray(files))
  bad, real_open = files[0], builtins.open

  def guarded_open(file, *args, **kwargs):
    if str(file) == bad:
      raise PermissionError(errno.EACCES, 'Permission denied', bad)
    return real_open(file, *args, **kwargs)
  monkeypatch.setattr(builtins, 'open', guarded_open)
  problem = image_checks.check_image(split, 0)
  user = pwd.getpwuid(os.geteuid()).pw_name
  assert problem == f'cannot read image {bad} (permission denied for user {user})'
  assert image_checks.bad_image_fix(split, problem) == ('make it readable for that user (chmod, chown), then '
                                                        'rerun the same command to resume from the last checkpoint')
  assert image_checks.check_image(split, 1) is None


def test_report_out_on_a_full_disk_is_one_line(reference_run, tmp_path):
  disk = tmp_path / 'disk'
  disk.mkdir()
  with _mounted(('mount', '-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', str(disk))):   # the plot does not fit
    r = subprocess.run([sys.executable, '-m', 'cil_jax', 'report', reference_run[0], '--out', f'{disk}/'], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
  assert r.returncode == 1 and _error(r) == (f'error: no space left on the device ({disk}); free space in {disk}, '
                                             'then run the same command again'), r.stderr[-3000:]


def test_report_out_on_a_full_disk_injected(reference_run, tmp_path, monkeypatch, capsys):
  from cil_jax.results import plots

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'report.png'))
  monkeypatch.setattr(plots, 'plot_accuracy', full)
  with pytest.raises(SystemExit) as stop:
    report.main([reference_run[0], '--out', f'{tmp_path}/'])
  assert str(stop.value) == (f'error: no space left on the device ({tmp_path}); free space in {tmp_path}, then run '
                             'the same command again')


def test_an_orbax_write_that_never_started_stays_quiet(recwarn):
  import gc
  import warnings
  with warnings.catch_warnings():
    errors.quiet_background_os_errors()

    async def write_fragment():   # as Orbax's, cut off by the failed save
      pass
    write_fragment()
    gc.collect()
  assert not [w for w in recwarn if 'never awaited' in str(w.message)]
