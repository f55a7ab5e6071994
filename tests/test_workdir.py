"""A workdir owns its experiment: resuming with another config is refused before any compute, a
refused or failed start writes nothing, one process at a time, finished runs only print; and the
command line's signals and errors end with one clear line."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from cil_jax.engine import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TF_BANNER = ('WARNING: All log messages before absl::InitializeLog()', 'I0000 ', 'W0000 ', 'To enable the following')


def _main(*args, timeout=300):
  t0 = time.perf_counter()
  r = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), *args], cwd=ROOT, capture_output=True,
                     text=True, timeout=timeout)
  return r, time.perf_counter() - t0


def _error(r):
  """The one line a failed command prints (TensorFlow's native banners aside), no traceback."""
  assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr[-3000:]
  lines = [line for line in r.stderr.splitlines()
           if line.strip() and not line.startswith(TF_BANNER) and not line.startswith('task ')]  # progress
  assert len(lines) == 1, r.stderr[-3000:]
  return lines[0]


def _tree(path):
  """Every file under path with its size and mtime: what 'writes nothing' compares."""
  out = {}
  for d, _, files in os.walk(path):
    for f in files:
      p = os.path.join(d, f)
      st = os.stat(p)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
  return out


@pytest.fixture(scope='module')
def finished(tmp_path_factory, idx_dir):
  """A finished default.py:smoke run (through main.py, as a user runs it)."""
  w = str(tmp_path_factory.mktemp('finished') / 'w')
  r, _ = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--workdir', w)
  assert r.returncode == 0, r.stderr[-3000:]
  return w, idx_dir, r.stdout


@pytest.mark.parametrize('args,field', [
    (['--config', 'configs/default.py:smoke', '--config.train.lr=0.05'], 'train.lr 0.1 there, 0.05 here'),
    (['--config', 'configs/default.py:smoke', '--config.seed=1'], 'seed 0 there, 1 here'),
    (['--config', 'configs/icarl_fmnist.py:smoke'], "method.name 'ssil' there, 'icarl' here"),
    (['--config', 'configs/default.py:smoke', '--config.scenario.class_order=identity'],
     "scenario.class_order 'ssil' there, 'identity' here"),
    (['--config', 'configs/default.py:t5,smoke', '--config.scenario.base=5', '--config.scenario.step=5'],
     'scenario.base 2 there, 5 here'),
])
def test_another_experiment_is_refused_before_any_compute_and_writes_nothing(finished, args, field):
  w, root, _ = finished
  before = _tree(w)
  r, seconds = _main(*args, f'--config.dataset.root={root}', '--workdir', w)
  line = _error(r)
  assert 'holds another experiment' in line and field in line and 'new --workdir' in line, line
  if 'method.name' in field:
    assert "resume the workdir with the workdir's method config (configs/ssil_*.py)" in line, line
  elif 'train.lr' in field:
    assert line.endswith('or resume the workdir with --config.train.lr=0.1'), line
  assert seconds < 4, f'{seconds:.1f} s: the refusal must come before the heavy imports'
  assert _tree(w) == before


def test_free_fields_resume_and_a_finished_run_only_prints(finished):
  w, root, first_stdout = finished
  before = _tree(w)
  r, _ = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={root}', '--config.log_every_steps=5',
               '--config.eval.batch_size=32', '--config.checkpoint.keep=3', '--workdir', w)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'holds this finished run' in r.stderr
  table = first_stdout[first_stdout.index('task |'):first_stdout.index('wall time')]
  assert table in r.stdout
  assert _tree(w) == before   # nothing written: works on a read-only workdir


def test_a_failed_start_leaves_no_trace(tmp_path):
  w = tmp_path / 'new'
  r, _ = _main('--config', 'configs/ssil_imagenet.py:smoke', f'--config.dataset.root={tmp_path}/nowhere',
               '--workdir', str(w))
  assert 'does not exist' in _error(r)
  assert not w.exists()


def test_a_workdir_path_through_a_file_is_one_line(tmp_path):
  (tmp_path / 'run.log').write_text('a log, not a workdir')
  for w, line in ((tmp_path / 'run.log', 'run.log is a file, not a folder; use another --workdir'),
                  (tmp_path / 'run.log' / 'sub', f"sub lies under {tmp_path / 'run.log'}, which is a file")):
    with pytest.raises(workdir_lib.WorkdirError, match=line):
      workdir_lib.check_compatible(None, str(w))
  r, _ = _main('--config', 'configs/default.py:smoke', '--workdir', str(tmp_path / 'run.log'))
  assert _error(r).endswith('run.log is a file, not a folder; use another --workdir')


def test_a_second_process_is_refused_with_a_clear_message(tmp_path, idx_dir):
  w = tmp_path / 'w'
  w.mkdir()
  lock = workdir_lib.Lock(str(w))   # as a running process holds it
  try:
    r, _ = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--workdir', str(w))
  finally:
    lock.release()
  line = _error(r)
  assert f'another process (pid {os.getpid()}) is running in {w}' in line, line
  assert sorted(os.listdir(w)) == ['lock']


def test_default_workdir_includes_the_config_argument():
  code = ('import sys; sys.argv = ["main.py"]; from cil_jax.tools import train_command as main; '
          'print(main.default_workdir("configs/default.py:smoke"), main.default_workdir("/x/default.py"), '
          'main.default_workdir("configs/default.py:t2,m100"))')
  r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
  assert r.stdout.split() == ['runs/default_smoke', 'runs/default', 'runs/default_t2_m100'], r.stderr


def test_main_runs_from_any_directory(tmp_path):
  r = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'), '--config', 'configs/default.py:t3'],
                     cwd=tmp_path, capture_output=True, text=True, timeout=60)
  assert 't3 does not divide' in _error(r)   # the relative config path was found from elsewhere


def test_ctrl_c_saves_and_exits_130_then_resumes(tmp_path, idx_dir, finished):
  w = str(tmp_path / 'w')
  common = ['--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--workdir', w]
  r, _ = _main(*common, '--config.debug.kill_at_step=6', '--config.debug.kill_signal=INT')
  assert r.returncode == 130, r.stderr[-3000:]
  assert 'Traceback' not in r.stderr
  assert 'SIGINT: checkpoint saved at task 2/5, train epoch 1/1, step 3; run the same command to resume' in r.stderr
  r, _ = _main(*common)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resumed from checkpoint' in r.stderr
  uninterrupted = json.load(open(os.path.join(finished[0], 'results.json')))
  assert json.load(open(os.path.join(w, 'results.json')))['top1'] == uninterrupted['top1']
  with open(os.path.join(w, 'log.txt')) as f:   # both sessions in the run's log, with their times
    log = f.read().splitlines()
  stamp = r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d '
  assert all(re.match(stamp, line) for line in log)
  texts = [line[20:] for line in log]
  assert texts[0].startswith('==== started: ') and '--config.debug.kill_signal=INT' in texts[0]
  stop = texts.index('SIGINT: checkpoint saved at task 2/5, train epoch 1/1, step 3; run the same command to resume')
  assert texts[stop + 1].startswith('==== resumed: ') and texts[stop + 2].startswith('resumed from checkpoint')
  assert 'task 1/5: top-1 50.00 on 2 seen classes (per task: 50.0)' in texts
  assert any(re.match(r'task 2/5 train ep 1/1 lr 0.05 .* loss ', t) for t in texts), texts   # progress
  assert texts[-1].startswith('wall time ') and 'this session' in texts[-1] and '(2 sessions)' in texts[-1]
  wall = json.load(open(os.path.join(w, 'results.json')))['wall_time']
  assert wall['sessions'] == 2 and len(wall['per_task_s']) == 5
  assert 0 < sum(wall['per_task_s']) <= wall['total_s']   # the tasks, then the last checkpoint


def test_nan_loss_is_one_line(tmp_path, idx_dir):
  r, _ = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}', '--config.train.lr=1e30',
               '--workdir', str(tmp_path / 'w'))
  line = _error(r)
  assert line.startswith('error: loss is ') and 'at task 1/5 base ep 1/1, step' in line, line
  assert 'lower train.lr' in line


def test_a_full_disk_is_one_line_even_when_wrapped():
  code = ('import sys, errno; from cil_jax import errors\n'
          'try:\n'
          '  try:\n'
          '    raise OSError(errno.ENOSPC, "No space left on device", "/w/checkpoints/7")\n'
          '  except OSError as e:\n'
          '    raise RuntimeError("async save failed") from e\n'
          'except RuntimeError as e:\n'
          '  print(errors.error_line(e))\n'
          'print(errors.error_line(KeyError("a bug")))')
  r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
  lines = r.stdout.splitlines()
  assert lines[0] == ('error: no space left on the device (/w/checkpoints); free space in /w/checkpoints, then rerun '
                      'the same command to resume from the last checkpoint'), r.stderr
  assert lines[1] == 'None'   # a bug keeps its traceback


def test_a_failed_start_in_an_existing_workdir_leaves_it_as_it_was(tmp_path):
  w = tmp_path / 'existing'
  w.mkdir()
  (w / 'notes.txt').write_text('mine')
  r, _ = _main('--config', 'configs/ssil_imagenet.py:smoke', f'--config.dataset.root={tmp_path}/nowhere',
               '--workdir', str(w))
  assert 'does not exist' in _error(r)
  assert sorted(os.listdir(w)) == ['notes.txt']


def test_an_explicit_class_order_from_the_command_line_is_checked(tmp_path, idx_dir):
  r, _ = _main('--config', 'configs/default.py:smoke', f'--config.dataset.root={idx_dir}',
               '--config.scenario.class_order=1,0,2', '--workdir', str(tmp_path / 'w'))
  assert 'scenario.class_order must be a permutation of 0..9; got 3 entries' in _error(r)


def test_the_library_entry_point_refuses_another_experiment_mid_run(finished, tmp_path):
  """train_and_evaluate (not only main.py) checks the workdir, also for a run killed before its
  first results.json."""
  import shutil
  from cil_jax.engine import train
  from helpers import load_config
  w, root, _ = finished
  cut = tmp_path / 'unfinished'
  shutil.copytree(w, cut)
  (cut / 'results.json').unlink()
  c = load_config('default.py', 'smoke', **{'dataset.root': root, 'train.lr': 0.05})
  with pytest.raises(workdir_lib.WorkdirError, match='train.lr 0.1 there, 0.05 here'):
    train.train_and_evaluate(c, str(cut))


def test_sigterm_during_start_up_is_one_line_and_leaves_no_trace(tmp_path, idx_dir):
  """SIGTERM once the start has taken the workdir's lock (data, model and compiled steps still to
  come): one line, status 143, and the workdir this start made is gone."""
  w = tmp_path / 'w'
  p = subprocess.Popen([sys.executable, os.path.join(ROOT, 'main.py'), '--config', 'configs/default.py:smoke',
                        f'--config.dataset.root={idx_dir}', '--workdir', str(w)], cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 120
  while not (w / 'lock').exists() and p.poll() is None and time.monotonic() < deadline:
    time.sleep(0.005)
  p.terminate()
  _, err = p.communicate(timeout=120)
  assert p.returncode == 143, err[-3000:]
  lines = [line for line in err.splitlines() if line.strip() and not line.startswith(TF_BANNER)]
  assert lines == ['stopped (SIGTERM); checkpoints saved before stay: run the same command to resume'], err[-3000:]
  assert not w.exists()


def test_the_dataset_check_names_what_changed_and_a_broken_record_is_one_line(tmp_path):
  w = tmp_path / 'w'
  (w / 'checkpoints' / '5').mkdir(parents=True)   # a run has computed something here
  fp = {'classes': 10, 'train': {'images': 480, 'digest': 'a'}, 'test': {'images': 80, 'digest': 'b'}}
  workdir_lib.check_dataset(fp, str(w))   # a workdir from before dataset.json: nothing to compare
  workdir_lib.write_dataset(dict(fp, version=2), str(w))
  workdir_lib.check_dataset(fp, str(w))   # keys it does not know change nothing
  with pytest.raises(workdir_lib.WorkdirError, match=r'\(9 classes, 10 at the start; test: other file names or '
                                                     r'labels than at the start\)'):
    workdir_lib.check_dataset(dict(fp, classes=9, test={'images': 80, 'digest': 'c'}), str(w))
  (w / 'dataset.json').write_text('{"classes": 10, "tr')
  with pytest.raises(workdir_lib.WorkdirError, match=r'dataset.json is unreadable \(JSONDecodeError\); use a new'):
    workdir_lib.check_dataset(fp, str(w))
