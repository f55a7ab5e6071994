"""Where a compiled step's time goes, from XLA's own tools: JAX's profiler traces the timed steps
(the Perfetto JSON it writes next to the XPlane file), and each traced operation is looked up in the
compiled HLO module, which says what it computes (a convolution's window tells a weight gradient
from a forward pass or an input gradient). Used by `cil-jax benchmark --profile DIR`.
"""
from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import re

import jax


@dataclasses.dataclass
class Instruction:
  name: str
  shape: str
  category: str
  source: str   # the JAX operation it came from (HLO metadata), '' when XLA made it


_LINE = re.compile(r'^\s*(?:ROOT )?%(\S+) = (\S+(?:\{[^}]*\})?) ([\w-]+)\(')


def _computations(hlo_text: str) -> dict[str, list[str]]:
  comps, current = {}, None
  for line in hlo_text.splitlines():
    m = re.match(r'^(?:ENTRY )?%(\S+) .*\{$', line)
    if m:
      current = m.group(1)
      comps[current] = []
    elif line.startswith('}'):
      current = None
    elif current is not None:
      comps[current].append(line)
  return comps


def _conv_category(conv_line: str, out_shape: str) -> str:
  """A window that spans more than the output's spatial size is a weight gradient (the activations
  act as the kernel); otherwise a forward convolution or an input gradient."""
  window = re.search(r'window=\{size=([\dx]+)', conv_line)
  dims = [int(d) for d in re.findall(r'\d+', out_shape.split('[', 1)[-1].split(']')[0])]
  if window and len(dims) >= 4:
    size = [int(d) for d in window.group(1).split('x')]
    if all(w > o for w, o in zip(size, dims[1:1 + len(size)])):
      return 'convolution: weight gradient'
  return 'convolution: forward or input gradient'


def _category(op: str, line: str, body: list[str]) -> str:
  lines = body + [line]
  conv = next((x for x in lines if ' convolution(' in x), None)
  if conv is not None:
    return _conv_category(conv, _LINE.match(line).group(2))
  if any(' dot(' in x for x in lines):
    return 'matrix multiply'
  if op in ('copy', 'transpose') or 'copy' in line.split('=')[0] or 'transpose' in line.split('=')[0]:
    return 'copy / transpose'
  if 'broadcast' in line.split('=')[0]:
    return 'broadcast'
  if any(' reduce(' in x or ' reduce-window(' in x for x in lines):
    return 'reduction fusion'
  if op == 'fusion':
    return 'elementwise fusion'
  return op


def instructions(hlo_text: str) -> dict[str, Instruction]:
  """The entry computation's instructions (what the runtime executes and the profiler names)."""
  comps = _computations(hlo_text)
  entry = re.search(r'^ENTRY %(\S+) ', hlo_text, re.M).group(1)
  out = {}
  for line in comps[entry]:
    m = _LINE.match(line)
    if not m or m.group(3) in ('parameter', 'constant', 'tuple', 'get-tuple-element', 'bitcast'):
      continue
    name, shape, op = m.groups()
    calls = re.search(r'calls=%([^,\s}]+)', line)
    body = comps.get(calls.group(1), []) if calls else []
    source = re.search(r'op_name="([^"]*)"', line)
    out[name] = Instruction(name, shape.split('{')[0], _category(op, line, body), source.group(1) if source else '')
  return out


def trace_times(trace_dir: str) -> dict[str, tuple[float, int]]:
  """name -> (total microseconds, count) of the complete events in the newest Perfetto trace."""
  files = sorted(glob.glob(os.path.join(trace_dir, '**', '*perfetto_trace.json.gz'), recursive=True),
                 key=os.path.getmtime)
  if not files:
    raise FileNotFoundError(f'no Perfetto trace under {trace_dir}')
  with gzip.open(files[-1]) as f:
    data = json.load(f)
  events = data['traceEvents'] if isinstance(data, dict) else data
  times = collections.defaultdict(lambda: [0.0, 0])
  for e in events:
    if e.get('ph') == 'X':
      name = (e.get('args') or {}).get('hlo_op', e['name'])   # GPU kernels carry their HLO op
      times[name][0] += float(e.get('dur', 0))
      times[name][1] += 1
  return {k: (v[0], v[1]) for k, v in times.items()}


def profile(run, compiled, steps: int, trace_dir: str, top: int = 15) -> dict:
  """Traces run(steps) (which returns its seconds) and joins the trace with `compiled`'s HLO:
  milliseconds per step per kind of operation, and the `top` longest operations."""
  instrs = instructions(compiled.as_text())
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    elapsed = run(steps)
  times = trace_times(trace_dir)
  rows = sorted(((times[n][0] / 1e3 / steps, instrs[n]) for n in instrs if n in times), key=lambda r: -r[0])
  by_kind = collections.defaultdict(float)
  for ms, ins in rows:
    by_kind[ins.category] += ms
  return {'step_ms': elapsed * 1e3 / steps, 'traced_ms': sum(ms for ms, _ in rows),
          'kinds': sorted(([k, ms] for k, ms in by_kind.items()), key=lambda kv: -kv[1]),
          'top': [[ms, ins.name, ins.shape, ins.category, ins.source] for ms, ins in rows[:top]]}


def format_profile(p: dict) -> str:
  traced = p['traced_ms'] or 1.0
  lines = [f'where the time goes ({p["step_ms"]:.1f} ms per step; its operations took {p["traced_ms"]:.1f} ms '
           'of thread time, operations on different threads overlapping):']
  for kind, ms in p['kinds']:
    lines.append(f'  {ms:8.2f} ms  {100 * ms / traced:5.1f} %  {kind}')
  lines.append(f'  the {len(p["top"])} longest operations:')
  for ms, name, shape, kind, source in p['top']:
    lines.append(f'  {ms:8.2f} ms  {100 * ms / traced:5.1f} %  {name} {shape} [{kind}]'
                 + (f' <- {source}' if source else ''))
  return '\n'.join(lines)
