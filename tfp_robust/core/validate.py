"""Argument checks shared by every entry point: one message style everywhere.

Each check raises `InvalidArgument` (a `ValueError`) whose message names the
argument, the value it got and what to do instead, before any expensive work
starts:

  num_results=0 is invalid: it must be an integer >= 1. Set
  --config.hmc.num_results to the number of kept samples per chain.

Checks return the value converted to its Python type, so callers write
`steps = validate.integer('num_steps', steps, minimum=1)`.
"""

import math
import numbers
import os
from typing import Iterable, Optional

import numpy as np


class InvalidArgument(ValueError):
  """A bad argument, config field or input, named with its value and fix."""


def fail(name: str, value, requirement: str, fix: str = ''):
  """Raises `InvalidArgument` in the shared format."""
  shown = repr(value)
  if len(shown) > 80:
    shown = shown[:77] + '...'
  message = f'{name}={shown} is invalid: {requirement}.'
  if fix:
    message += f' {fix}'
  raise InvalidArgument(message)


def _range_text(minimum, maximum, exclusive_minimum=False,
                exclusive_maximum=False):
  parts = []
  if minimum is not None:
    parts.append(f"{'>' if exclusive_minimum else '>='} {minimum}")
  if maximum is not None:
    parts.append(f"{'<' if exclusive_maximum else '<='} {maximum}")
  return ' and '.join(parts)


def integer(name: str, value, minimum: Optional[int] = None,
            maximum: Optional[int] = None, fix: str = '') -> int:
  """An int (not a bool, not a float such as 2.5 or 3.0) within the bounds."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, numbers.Integral):
    fail(name, value, 'it must be an integer' +
         (f' {_range_text(minimum, maximum)}' if minimum is not None or
          maximum is not None else ''), fix)
  value = int(value)
  if (minimum is not None and value < minimum) or (
      maximum is not None and value > maximum):
    fail(name, value, f'it must be an integer {_range_text(minimum, maximum)}',
         fix)
  return value


def number(name: str, value, minimum: Optional[float] = None,
           maximum: Optional[float] = None, exclusive_minimum: bool = False,
           exclusive_maximum: bool = False, fix: str = '') -> float:
  """A finite real number (not NaN, not infinite, not a bool) within bounds."""
  bounds = _range_text(minimum, maximum, exclusive_minimum, exclusive_maximum)
  requirement = 'it must be a finite number' + (f' {bounds}' if bounds else '')
  if isinstance(value, (bool, np.bool_)) or not isinstance(value,
                                                           numbers.Real):
    fail(name, value, requirement, fix)
  value = float(value)
  if not math.isfinite(value):
    fail(name, value, requirement, fix)
  if minimum is not None and (value < minimum or
                              (exclusive_minimum and value == minimum)):
    fail(name, value, requirement, fix)
  if maximum is not None and (value > maximum or
                              (exclusive_maximum and value == maximum)):
    fail(name, value, requirement, fix)
  return value


def positive(name: str, value, fix: str = '') -> float:
  """A finite number > 0 (learning rates, step sizes, prior scales)."""
  return number(name, value, minimum=0.0, exclusive_minimum=True, fix=fix)


def open_probability(name: str, value, fix: str = '') -> float:
  """A number strictly between 0 and 1 (target acceptance rates)."""
  return number(name, value, minimum=0.0, maximum=1.0, exclusive_minimum=True,
                exclusive_maximum=True, fix=fix)


def eps(name: str, value) -> float:
  """An L-infinity radius for inputs in [0, 1]: finite, in [0, 1]."""
  return number(name, value, minimum=0.0, maximum=1.0,
                fix='Inputs live in [0, 1], so a radius above 1 is the whole '
                'cube; use a value in [0, 1], e.g. 0.1.')


def one_of(name: str, value, choices: Iterable, fix: str = ''):
  """`value` if it is one of `choices`."""
  choices = tuple(choices)
  if value not in choices:
    fail(name, value, f'it must be one of {choices}', fix)
  return value


def seed(name: str, value) -> int:
  """A seed: an integer >= 0."""
  return integer(name, value, minimum=0,
                 fix='Use a non-negative integer such as 0.')


def labels(name: str, y, num_classes: Optional[int] = None) -> np.ndarray:
  """Class labels as int32: whole numbers in [0, num_classes).

  Float arrays holding whole numbers are accepted; 1.7 is refused rather
  than truncated to 1.
  """
  array = np.asarray(y)
  if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or
                                     np.issubdtype(array.dtype, np.floating)):
    fail(name, f'array of dtype {array.dtype}', 'labels must be integers',
         'Pass class indices 0 .. num_classes - 1.')
  if array.ndim != 1:
    fail(name, f'array of shape {array.shape}', 'labels must be one '
         'dimensional', 'Pass class indices, not one-hot vectors.')
  if np.issubdtype(array.dtype, np.floating):
    bad = ~np.isfinite(array) | (array != np.round(array))
    if bad.any():
      fail(name, f'array with {int(bad.sum())} non-integer values such as '
           f'{array[bad][0]}', 'labels must be whole numbers',
           'Pass class indices (y.astype(int) if they are whole floats).')
  if array.size and num_classes is not None:
    low, high = array.min(), array.max()
    if low < 0 or high >= num_classes:
      fail(name, f'array with values in [{low:g}, {high:g}]',
           f'labels must lie in [0, {num_classes - 1}] for {num_classes} '
           'classes', 'Check the dataset or the number of classes.')
  return array.astype(np.int32)


def pixels(name: str, x) -> np.ndarray:
  """Inputs as float32, finite and scaled to [0, 1]."""
  array = np.asarray(x)
  if not (np.issubdtype(array.dtype, np.floating) or
          np.issubdtype(array.dtype, np.integer)) or array.dtype == np.bool_:
    fail(name, f'array of dtype {array.dtype}', 'inputs must be numbers')
  array = array.astype(np.float32)
  if array.size == 0:
    fail(name, f'array of shape {array.shape}', 'there are no inputs',
         'Pass at least one example.')
  finite = np.isfinite(array)
  if not finite.all():
    fail(name, f'array with {int((~finite).sum())} NaN or infinite values',
         'inputs must be finite', 'Clean the data before training.')
  low, high = float(array.min()), float(array.max())
  if low < 0.0 or high > 1.0:
    fail(name, f'array with values in [{low:g}, {high:g}]',
         'inputs must be scaled to [0, 1] (attacks clip to that box)',
         'Divide 8-bit pixels by 255.' if high > 1.0 else
         'Rescale the inputs to [0, 1].')
  return array


def workdir(name: str, path) -> str:
  """A work directory that exists (created) and is writable."""
  if not isinstance(path, str) or not path.strip():
    fail(name, path, 'it must be a non-empty path',
         'Pass --workdir=some/directory.')
  if os.path.exists(path) and not os.path.isdir(path):
    fail(name, path, 'it exists and is not a directory',
         'Choose another path.')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as error:
    fail(name, path, f'it cannot be created ({error.strerror})',
         'Choose a directory you can write to.')
  if not os.access(path, os.W_OK | os.X_OK):
    fail(name, path, 'it is not writable', 'Choose a directory you can '
         'write to, or fix its permissions.')
  return path
