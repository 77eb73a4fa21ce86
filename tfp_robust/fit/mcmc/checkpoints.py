"""Checkpoints of a sampling run: the state after each phase, each segment's
kept samples, the warm-up's kernel results and trace, `run.json`, and the
measured wall time of each phase (`timings.json`).

Every checkpoint is a `tf.train.Checkpoint` written to a staging directory
and renamed into place (the previous version kept as `.old` until then), so
a run killed at any moment leaves either the old or the new checkpoint.
Files read back are untrusted: shapes are checked against templates and a
truncated or foreign checkpoint ends in one clear error naming it.
"""

import dataclasses
import json
import os
import math
from typing import Dict, Optional

from absl import logging
import tensorflow as tf

from tfp_robust.core import files


RUN_FILE = 'run.json'
# Measured wall time of each finished phase (see `Checkpoints.save_timings`).
TIMINGS_FILE = 'timings.json'


def is_checkpoint_name(name: str) -> bool:
  """Whether `name` is one of the checkpoints `Checkpoints` writes."""
  base = name[:-len('.old')] if name.endswith('.old') else name
  return base in ('state', 'warm_up', 'warm_up_trace') or (
      base.startswith('segment_') and base[len('segment_'):].isdigit())


class Checkpoints:
  """State after each phase, and each segment's samples, in `directory`.

  `run.json` describes the run: `config` and `target` (what produced the
  checkpoints; a resume must match both, except that a finished or running
  run may be extended to more kept draws, `num_results`, when its planned
  draws fill whole segments), plus, for runs started by this
  version, `data_sha256` (a SHA-256 of the training data, checked on resume
  when present) and `code_version` (a different one is logged). A directory
  holding checkpoints but no readable `run.json` is refused: nothing would
  say which run they belong to.
  """

  def __init__(self, directory: Optional[str], config,
               identity: str, data_digest: str = ''):
    self.directory = directory
    if not directory:
      return
    os.makedirs(directory, exist_ok=True)
    description = json.loads(json.dumps(
        {'config': dataclasses.asdict(config), 'target': identity}))
    path = os.path.join(directory, RUN_FILE)
    fresh = ('Delete the directory to start afresh, or use another '
             'checkpoint directory.')
    if not os.path.exists(path):
      started = sorted(name for name in os.listdir(directory)
                       if is_checkpoint_name(name))
      if started:
        files.invalid(path, 'it is missing, but the directory holds HMC '
                      f'checkpoints ({", ".join(started[:4])}'
                      f'{", ..." if len(started) > 4 else ""}), so nothing '
                      'says which configuration and data produced them', fresh)
      files.write_text_atomically(path, json.dumps(dict(
          description, data_sha256=data_digest,
          code_version=files.code_version()), indent=2))
      return
    saved = files.read_json(path, 'an HMC run description')
    if not (isinstance(saved, dict) and 'config' in saved and
            'target' in saved):
      files.invalid(path, 'it should be a JSON object with the run\'s '
                    '"config" and "target"', fresh)
    # A field added to the config after the run started is read as its
    # default, which is what the run used (new fields default to the old
    # behaviour), so old runs still resume.
    # A field whose new default changed what such a run did is read as the
    # value the run used (the config class's `legacy_values`).
    saved_config = saved['config']
    if isinstance(saved_config, dict):
      legacy = getattr(type(config), 'legacy_values', lambda _: {})
      defaults = json.loads(json.dumps(dict({
          f.name: f.default for f in dataclasses.fields(config)
          if f.default is not dataclasses.MISSING}, **legacy(saved_config))))
      saved_config = dict(defaults, **saved_config)
    recorded = {'config': saved_config,
                'target': saved['target']}
    if _extends(recorded, description):
      # More kept draws than the run planned: its segments stay, and the
      # sampler goes on from its last state with the next segments' seeds,
      # so the extended run is the run that planned them from the start.
      logging.info('HMC: extending %s from %d to %d kept draws.', directory,
                   recorded['config']['num_results'],
                   description['config']['num_results'])
      files.write_text_atomically(path, json.dumps(dict(
          saved, config=description['config'],
          extended_from=saved.get('extended_from', []) + [
              recorded['config']['num_results']]), indent=2))
      recorded = description
    if recorded != description:
      files.invalid(path, 'the HMC checkpoint in this directory was written '
                    f'by a different configuration or target ({recorded})',
                    fresh)
    if data_digest and saved.get('data_sha256') and (
        saved['data_sha256'] != data_digest):
      files.invalid(path, 'the HMC checkpoint in this directory was written '
                    'for different training data (data SHA-256 '
                    f'{saved["data_sha256"][:12]}..., now '
                    f'{data_digest[:12]}...)', fresh)
    if saved.get('code_version') not in (None, files.code_version()):
      logging.warning('HMC: resuming %s, started by %s, with %s.', directory,
                      saved['code_version'], files.code_version())

  def _write(self, name, tensors):
    if not self.directory:
      return
    # The previous version stays readable (as .old) until the new one is in.
    with files.staged_directory(os.path.join(self.directory, name)) as staging:
      variables = {f't{i}': tf.Variable(t) for i, t in enumerate(tensors)}
      tf.train.Checkpoint(**variables).write(os.path.join(staging, 'ckpt'))

  def _read(self, name, templates):
    path = os.path.join(self.directory or '', name)
    if self.directory and not os.path.isdir(path) and os.path.isdir(
        path + '.old'):
      path += '.old'  # Killed between the two renames of `_write`.
    if not self.directory or not os.path.isdir(path):
      return None
    variables = {f't{i}': tf.Variable(tf.zeros_like(t))
                 for i, t in enumerate(templates)}
    try:
      tf.train.Checkpoint(**variables).read(
          os.path.join(path, 'ckpt')).assert_existing_objects_matched()
    except (AssertionError, ValueError, IndexError, OSError,
            tf.errors.OpError) as error:
      files.invalid(path, 'the HMC checkpoint cannot be read '
                    f'({type(error).__name__}: {error}); it is truncated, '
                    'corrupt or from another run',
                    f'Delete {self.directory!r} to start the run afresh.')
    return [variables[f't{i}'].read_value() for i in range(len(templates))]

  def save_state(self, state, step_size, phases_done, results=None):
    """The state after `phases_done` phases, and the kernel's results when
    sampling carries them from segment to segment (adaptive kernels)."""
    flat = [tf.convert_to_tensor(t) for t in tf.nest.flatten(results, expand_composites=True)] if (
        results is not None) else []
    self._write('state', list(state) + flat + [
        tf.constant(step_size, tf.float32), tf.constant(phases_done, tf.int64)])

  def load_state(self, template_state, template_results=None):
    """`(state, step_size, phases_done, results)`, or None before any."""
    flat = [tf.convert_to_tensor(t) for t in tf.nest.flatten(
        template_results, expand_composites=True)] if template_results is not None else []
    values = self._read('state', list(template_state) + flat +
                        [tf.constant(0.0), tf.constant(0, tf.int64)])
    if values is None:
      return None
    count = len(template_state)
    results = (tf.nest.pack_sequence_as(template_results,
                                        values[count:count + len(flat)],
                                        expand_composites=True)
               if template_results is not None else None)
    return values[:count], float(values[-2]), int(values[-1]), results

  def save_warm_up(self, state, results, seed, accepted, steps_done):
    self._write('warm_up', list(state) + [
        tf.convert_to_tensor(t) for t in tf.nest.flatten(results, expand_composites=True)] + [
            seed, tf.constant(accepted, tf.float32),
            tf.constant(steps_done, tf.int64)])

  def load_warm_up(self, template_state, template_results, template_seed):
    flat_results = [tf.convert_to_tensor(t)
                    for t in tf.nest.flatten(template_results,
                                                expand_composites=True)]
    values = self._read('warm_up', list(template_state) + flat_results + [
        template_seed, tf.constant(0.0), tf.constant(0, tf.int64)])
    if values is None:
      return None
    count = len(template_state)
    results = tf.nest.pack_sequence_as(template_results,
                                       values[count:count + len(flat_results)],
                                       expand_composites=True)
    return (values[:count], results, values[-3], float(values[-2]),
            int(values[-1]))

  def save_warm_up_trace(self, trace):
    self._write('warm_up_trace', [tf.convert_to_tensor(t) for t in trace])

  def load_warm_up_trace(self, config):
    """The warm-up trace, or None (none yet, or an older run's checkpoint)."""
    templates = [tf.zeros((config.num_burnin_steps, config.num_chains)),
                 tf.zeros((config.num_burnin_steps, config.num_chains)),
                 tf.zeros((config.num_burnin_steps,))]
    try:
      values = self._read('warm_up_trace', templates)
    except (AssertionError, ValueError, tf.errors.OpError) as error:
      logging.warning('HMC: the warm-up trace in %s is unreadable (%s); '
                      'TensorBoard will lack the warm-up.', self.directory,
                      error)
      return None
    return None if values is None else [v.numpy() for v in values]

  def save_segment(self, index, samples, log_prob, is_accepted):
    self._write(f'segment_{index:05d}', list(samples) + [log_prob, is_accepted])

  def load_segment(self, index, templates):
    return self._read(f'segment_{index:05d}', templates)

  def save_timings(self, timings: Dict) -> None:
    """The measured time of each finished phase, so that a resumed run
    reports the whole run's cost, not only what its last process ran.

    `timings`: `warm_up_seconds` and `warm_up_steps` (the warm-up chunks
    saved so far; a chunk lost to a kill is not counted) and `segments`,
    `{index: {'seconds', 'iterations', 'leapfrogs'}}` (the segment's mean
    leapfrog steps per iteration).
    """
    if not self.directory:
      return
    files.write_text_atomically(
        os.path.join(self.directory, TIMINGS_FILE), json.dumps(
            dict(timings, segments={str(k): v for k, v in
                                    timings['segments'].items()}), indent=2))

  def load_timings(self) -> Dict:
    """What `save_timings` saved; empty timings when there is none.

    The file is untrusted: anything but finite non-negative numbers in the
    expected places is ignored with a warning (the run then reports only
    the phases this process times), never an error: timings decide no
    sample.
    """
    empty = {'warm_up_seconds': 0.0, 'warm_up_steps': 0, 'segments': {}}
    path = os.path.join(self.directory or '', TIMINGS_FILE)
    if not self.directory or not os.path.exists(path):
      return empty

    def number(value):
      if isinstance(value, bool) or not isinstance(value, (int, float)) or (
          not math.isfinite(value) or value < 0):
        raise ValueError(f'{value!r} is not a non-negative number')
      return value

    try:
      saved = files.read_json(path, 'HMC phase timings')
      segments = {}
      for key, entry in saved['segments'].items():
        if not key.isdigit() or set(entry) != {'seconds', 'iterations',
                                               'leapfrogs'}:
          raise ValueError(f'segment entry {key!r}: {entry!r}')
        segments[int(key)] = {k: number(v) for k, v in entry.items()}
      return {'warm_up_seconds': float(number(saved['warm_up_seconds'])),
              'warm_up_steps': int(number(saved['warm_up_steps'])),
              'segments': segments}
    except (files.InvalidFile, KeyError, TypeError, AttributeError,
            ValueError, ArithmeticError, RecursionError) as error:
      logging.warning('HMC: ignoring the phase timings in %s (%s); the run '
                      'reports only the phases this process times.', path,
                      error)
      return empty


def _extends(recorded: Dict, wanted: Dict) -> bool:
  """Whether `wanted` is the `recorded` run with more kept draws: the same
  target and settings but `num_results`, whose old value fills whole
  segments (so no segment changes size)."""
  old, new = recorded['config'], wanted['config']
  if recorded['target'] != wanted['target'] or not isinstance(old, dict):
    return False
  others = {k: v for k, v in old.items() if k != 'num_results'}
  if others != {k: v for k, v in new.items() if k != 'num_results'}:
    return False
  try:
    return (int(new['num_results']) > int(old['num_results']) and
            int(old['num_results']) % int(old['segment_size']) == 0)
  except (KeyError, TypeError, ValueError):
    return False
