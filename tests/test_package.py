"""The package as a user installs it: pyproject.toml, the `cil-jax` command, shipped configs by name."""
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib

import pytest

from cil_jax.tools import cli
from cil_jax import command_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    return tomllib.load(f)


def test_requirements_txt_agrees_with_pyproject():
  with open(os.path.join(ROOT, 'requirements.txt')) as f:
    listed = [line.strip() for line in f if line.strip() and not line.startswith('#')]
  assert listed == _pyproject()['project']['dependencies']


def test_every_subpackage_is_packaged():
  listed = set(_pyproject()['tool']['setuptools']['packages'])
  found = {os.path.relpath(d, ROOT).replace(os.sep, '.') for d, _, files in os.walk(os.path.join(ROOT, 'cil_jax'))
           if '__init__.py' in files}
  assert found | {'cil_jax.configs'} == listed


def test_every_dependency_is_imported_somewhere():
  """No requirement that nothing imports (importlib_resources was one)."""
  imported = set()
  for folder in ('cil_jax', 'configs'):
    for d, _, files in os.walk(os.path.join(ROOT, folder)):
      for name in files:
        if name.endswith('.py'):
          with open(os.path.join(d, name)) as f:
            imported |= set(re.findall(r'^\s*(?:from|import) (\w+)', f.read(), re.M))
  module = {'orbax-checkpoint': 'orbax', 'tensorflow-cpu': 'tensorflow', 'tensorflow-datasets': 'tensorflow_datasets',
            'ml-collections': 'ml_collections', 'absl-py': 'absl', 'pillow': 'PIL', 'scikit-learn': 'sklearn'}
  for requirement in _pyproject()['project']['dependencies']:
    name = re.split(r'[<>=!~ ]', requirement)[0]
    assert module.get(name, name) in imported, requirement


def _installed() -> bool:
  try:
    importlib.metadata.distribution('cil_jax')
  except importlib.metadata.PackageNotFoundError:
    return False
  return True


def _command():
  script = os.path.join(os.path.dirname(sys.executable), 'cil-jax')
  return [script] if os.path.exists(script) else [sys.executable, '-m', 'cil_jax']


@pytest.mark.skipif(not _installed(), reason='the package is not installed (pip install -e .)')
def test_console_script_runs_each_command_from_another_directory(tmp_path):
  assert os.path.exists(os.path.join(os.path.dirname(sys.executable), 'cil-jax')), 'pip install -e . makes it'
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  for args, text in ((['--help'], 'commands:'), (['train', '--help'], '--workdir DIR'),
                     (['report', '--help'], 'usage: cil-jax report'), (['data', '--help'], 'cil-jax data check'),
                     (['benchmark', '--help'], 'usage: cil-jax benchmark'),
                     (['launch', '--help'], 'usage: cil-jax launch')):
    r = subprocess.run(_command() + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and text in r.stdout, (args, r.stdout[-2000:], r.stderr[-2000:])
  r = subprocess.run(_command() + ['traim'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
  assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown command 'traim'; did you mean train?")
  # a shipped config by name, from a directory that holds no configs/: its own error proves it loaded
  r = subprocess.run(_command() + ['train', '--config', 'default:t3'], cwd=tmp_path, env=env, capture_output=True,
                     text=True, timeout=120)
  assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith('error: ') and 't3 does not divide' \
      in r.stderr, r.stderr[-2000:]


def test_help_exits_0():
  for args in (['main.py', '--help'], ['-m', 'cil_jax', '--help'], ['-m', 'cil_jax', 'data', '--help']):
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout, (args, r.stderr[-2000:])


def test_a_config_is_found_by_path_or_by_shipped_name(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  shipped = os.path.join(command_line.configs_dir(), 'ssil_fmnist.py')
  for name in ('ssil_fmnist', 'ssil_fmnist.py', 'configs/ssil_fmnist.py'):
    assert command_line.find_config(name) == shipped
  (tmp_path / 'mine.py').write_text('from configs.fmnist_common import fmnist_config\n\n'
                                    'def get_config(arg=None):\n  return fmnist_config("ft", arg)\n')
  assert command_line.find_config('mine.py') == str(tmp_path / 'mine.py')
  assert command_line.load_config_file(str(tmp_path / 'mine.py') + ':smoke').method.name == 'ft'  # shipped parts
  assert command_line.find_config('elsewhere/ssil_fmnist') is None   # a path names a file, not a shipped config
  with pytest.raises(ValueError, match='did you mean --config ssil_fmnist:t5'):
    command_line.config_arg(['x', '--config', 'ssil_fmnst:t5'])
  assert 'default' in command_line.shipped_configs() and 'fmnist_common' not in command_line.shipped_configs()


def test_the_commands_are_listed_once():
  assert set(cli.COMMANDS) == {'train', 'report', 'data', 'benchmark', 'launch'}
  assert cli.main(['--help']) == 0


def test_a_plain_install_carries_the_shipped_configs_and_data(tmp_path):
  """`pip install .` (not editable): the package, its configs and its data files land in site-packages."""
  target = tmp_path / 'site'
  r = subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(target), ROOT],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  code = ('import cil_jax.command_line as c; print(c.__file__); '
          'print(c.load_config_file(c.find_config("ssil_imagenet") + ":t5").scenario.step); '
          'from cil_jax.input_pipeline import class_lists; print(len(class_lists.MINIIMAGENET))')
  r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(target)),
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-3000:]
  where, step, listed = r.stdout.split()
  assert where.startswith(str(target)) and step == '200' and listed == '100'   # the package data came along


def test_the_launcher_runs_the_train_command_or_a_script():
  from cil_jax.tools import launch
  assert launch.python_command(['train', '--config', 'default']) == [sys.executable, '-m', 'cil_jax', 'train', '--config',
                                                                      'default']
  assert launch.python_command(['main.py', '--config', 'x']) == [sys.executable, 'main.py', '--config', 'x']
