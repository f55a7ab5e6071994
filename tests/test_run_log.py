"""The run's log (cil_jax/engine/run_log.py): every printed line, timed, appended across sessions."""
import re
import sys

from cil_jax.engine import run_log, session


def _texts(path):
  with open(path) as f:
    lines = f.read().splitlines()
  assert all(re.match(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ', line) for line in lines), lines
  return [line[20:] for line in lines]


def test_lines_redraws_and_sessions(tmp_path, capsys):
  log = run_log.RunLog(str(tmp_path), argv=['cil-jax', 'train', '--config', 'a b'])
  print('hello')
  sys.stderr.write('\r\x1b[Ktask 1 [#...] 1/4')   # a terminal's in-place redraws
  sys.stderr.write('\r\x1b[Ktask 1 [####] 4/4')
  sys.stderr.write('\nhalf a ')
  sys.stderr.write('line\n')
  log.note('error: one\nline two')
  print('unfinished', end='')
  log.close()
  log.close()   # idempotent
  assert sys.stdout is not None and not isinstance(sys.stdout, run_log._Tee)
  out = capsys.readouterr()
  assert out.out == 'hello\nunfinished' and 'task 1 [####] 4/4' in out.err   # the terminal sees it all
  assert _texts(tmp_path / 'log.txt') == [
      "==== started: cil-jax train --config 'a b' (host " + _texts(tmp_path / 'log.txt')[0].split('(host ')[1],
      'hello', 'task 1 [#...] 1/4', 'task 1 [####] 4/4', 'half a line', 'error: one', 'line two', 'unfinished']
  run_log.RunLog(str(tmp_path), argv=['again']).close()
  assert _texts(tmp_path / 'log.txt')[-1].startswith('==== resumed: again (host ')


def test_the_line_that_ends_a_session():
  assert session.ending_line(ValueError('bad value')) == 'error: bad value'
  assert session.ending_line(session.Stopped(15, saved=True)) == ''   # its own message is logged already
  assert session.ending_line(KeyboardInterrupt()) == 'stopped (KeyboardInterrupt)'
  try:
    {}['x']
  except KeyError as e:
    text = session.ending_line(e)
  assert text.startswith('Traceback (most recent call last):') and text.endswith("KeyError: 'x'")
