"""TensorBoard scalars and hyper-parameters without TensorFlow: event records built from the tensorboard package's own
protos and record framing, written to a plain file. TensorFlow's writer would cost its import
(seconds at every start) in runs that need no tf.data."""
from __future__ import annotations

import importlib
import os
import socket
import time


class ScalarWriter:
  """One events file per start (as TensorFlow's writer does); TensorBoard reads them all."""

  def __init__(self, logdir: str):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    self._event, self._summary = event_pb2.Event, summary_pb2.Summary
    os.makedirs(logdir, exist_ok=True)
    now = time.time()
    name = f'events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}.0.v2'
    self._file = open(os.path.join(logdir, name), 'wb')
    self._records = RecordWriter(self._file)
    self._write(self._event(wall_time=now, file_version='brain.Event:2'))

  def _write(self, event) -> None:
    self._records.write(event.SerializeToString())

  def scalars(self, step: int, values: dict) -> None:
    summary = self._summary(value=[self._summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
    self._write(self._event(wall_time=time.time(), step=int(step), summary=summary))

  def hparams(self, fields: dict, trial: str) -> None:
    """The run's settings for TensorBoard's HParams tab (its plugin's session-start record): a value
    that is not a number, a string or a bool goes as its text."""
    from tensorboard.plugins.hparams import summary_v2
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in fields.items()}
    self._write(self._event(wall_time=time.time(), step=0,
                            summary=summary_v2.hparams_pb(values, trial_id=trial, start_time_secs=time.time())))

  def flush(self) -> None:
    self._records.flush()

  def close(self) -> None:
    self._records.close()


def available() -> bool:
  """Whether the tensorboard package (its protos and record writer, no TensorFlow) is installed."""
  try:
    for name in ('tensorboard.compat.proto.event_pb2', 'tensorboard.summary.writer.record_writer'):
      importlib.import_module(name)
  except ImportError:
    return False
  return True
