"""What a run leaves per step: finished markers, attempt records, wall times.

A step that exits 0 writes an atomic marker `<workdir>/steps/<name>.json`
holding its command, wall time and code version; a step whose marker
records the same `signature` (binary, config, flags, sub-directory) is
finished. Wall time counts every attempt, failed and killed ones too: a
running step saves its start and, every `HEARTBEAT_SECONDS`, its last alive
time in `<workdir>/steps/<name>.attempts.json`, so an attempt that was
killed still counts; the marker sums them. A work directory holds one scale
(`claim_workdir`).
"""

import datetime
import json
import os
import shlex
import threading
import time
from typing import Dict, List, Optional

from absl import logging

from tfp_robust.core import files
from tfp_robust.core import validate
from tfp_robust.experiments.reproduce.steps import Launch
from tfp_robust.experiments.reproduce.steps import signature
from tfp_robust.experiments.reproduce.steps import Step

_SCALE_FILE = 'reproduce.json'


def marker_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'steps', step.name + '.json')


def attempts_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'steps',
                      step.name + '.attempts.json')


# How often a running step's last-alive time is saved: a killed attempt's
# time is counted to within this.
HEARTBEAT_SECONDS = 30.0


def earlier_attempts(step: Step, workdir: str, scale: str) -> List[List[float]]:
  """`[start, last alive]` (epoch seconds) of the step's unfinished attempts.

  Attempts of another command, or an unreadable file, count as none.
  """
  path = attempts_path(step, workdir)
  if not os.path.exists(path):
    return []
  try:
    saved = files.read_json(path, "a step's attempt times")
  except files.InvalidFile as error:
    logging.warning('%s Its earlier attempts are not counted.', error)
    return []
  spans = saved.get('attempts') if isinstance(saved, dict) else None
  if (spans is None or saved.get('signature') != signature(step, scale) or
      not isinstance(spans, list) or
      not all(isinstance(a, list) and len(a) == 2 and
              all(isinstance(t, (int, float)) for t in a) and a[1] >= a[0]
              for a in spans)):
    logging.warning('%s is not this step\'s attempt record; its earlier '
                    'attempts are not counted.', path)
    return []
  return spans


class Attempt:
  """Records an attempt's start and, every `HEARTBEAT_SECONDS`, its last
  alive time in the step's attempts file, so a killed run still counts it."""

  def __init__(self, step: Step, workdir: str, scale: str):
    self._path = attempts_path(step, workdir)
    self._signature = signature(step, scale)
    self.earlier = earlier_attempts(step, workdir, scale)
    self._start = time.time()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, daemon=True)

  def _save(self) -> None:
    # Bookkeeping: a failure to write it must not stop the step.
    try:
      files.write_text_atomically(self._path, json.dumps({
          'signature': self._signature,
          'attempts': self.earlier + [[self._start, time.time()]]}))
    except OSError as error:
      logging.warning('Could not record the attempt in %s (%s); its time '
                      'will not count if the run is killed.', self._path,
                      error)

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_SECONDS):
      self._save()

  def __enter__(self):
    os.makedirs(os.path.dirname(self._path), exist_ok=True)
    self._save()
    self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    self._thread.join()
    self._save()

  @property
  def seconds(self) -> float:
    """This attempt's time so far."""
    return time.time() - self._start

  @property
  def all_seconds(self) -> float:
    """This attempt's time so far plus every earlier attempt's."""
    return self.seconds + sum(end - start for start, end in self.earlier)


def log_path(step: Step, workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'logs', step.name + '.log')


def finished(step: Step, workdir: str, scale: str,
             warn: bool = True) -> Optional[Dict]:
  """The step's marker if it finished with the same signature, else None.

  A marker that is unreadable or records another command counts as not
  finished (with a warning when `warn`): the step runs again.
  """
  path = marker_path(step, workdir)
  if not os.path.exists(path):
    return None
  try:
    marker = files.read_json(path, 'a finished-step marker')
  except files.InvalidFile as error:
    if warn:
      logging.warning('%s The step runs again.', error)
    return None
  if not isinstance(marker, dict) or not isinstance(
      marker.get('seconds'), (int, float)):
    if warn:
      logging.warning('%s is not a finished-step marker; the step runs '
                      'again.', path)
    return None
  if marker.get('signature') != signature(step, scale):
    if warn:
      logging.warning('Step %s finished earlier with another command (%s); '
                      'it runs again.', step.name,
                      shlex.join(map(str, marker.get('command') or [])))
    return None
  return marker


def write_marker(step: Step, workdir: str, launch: Launch,
                  argv: List[str], seconds: float, all_seconds: float,
                  attempts: int) -> None:
  files.write_text_atomically(marker_path(step, workdir), json.dumps({
      'step': step.name, 'command': argv, 'seconds': seconds,
      'seconds_all_attempts': all_seconds, 'attempts': attempts,
      'signature': signature(step, launch.scale), 'scale': launch.scale,
      'finished': datetime.datetime.now().isoformat(timespec='seconds'),
      'code_version': files.code_version()}, indent=2))


def claim_workdir(workdir: str, scale: str) -> None:
  """Records the scale of a new work directory; refuses another scale.

  Binaries reuse what a work directory holds (saved ensembles, grid cells),
  so CPU-scale and paper-scale results must not share one.
  """
  path = os.path.join(workdir, _SCALE_FILE)
  if os.path.exists(path):
    held = files.read_json(path, 'the scale of a reproduce run')
    held = held.get('scale') if isinstance(held, dict) else None
    if held != scale:
      validate.fail('--scale', scale, f'the work directory {workdir} holds '
                    f'a {held}-scale run, whose trained models the '
                    f'{scale}-scale steps would reuse', 'Choose another '
                    '--workdir for this scale.')
    return
  files.write_text_atomically(path, json.dumps({
      'scale': scale,
      'started': datetime.datetime.now().isoformat(timespec='seconds')}))


# -- wall times ---------------------------------------------------------------

def step_seconds(marker: Dict) -> float:
  """A finished step's wall time over all its attempts (a marker written
  before attempts were counted has its last attempt's only)."""
  value = marker.get('seconds_all_attempts')
  return float(value if isinstance(value, (int, float)) else
               marker['seconds'])


def step_time(marker: Dict) -> str:
  attempts = marker.get('attempts')
  text = duration(step_seconds(marker))
  if isinstance(attempts, int) and attempts > 1:
    text += (f' over {attempts} attempts (last '
             f"{duration(marker['seconds'])})")
  return text


def duration(seconds: float) -> str:
  """A wall time as people read it: 42 s, 12.5 min, 3 h 07 min."""
  seconds = float(seconds)
  if seconds < 60:
    return f'{seconds:.0f} s'
  if seconds < 3600:
    return f'{seconds / 60:.1f} min'
  hours, rest = divmod(int(round(seconds)), 3600)
  return f'{hours} h {rest // 60:02d} min'
