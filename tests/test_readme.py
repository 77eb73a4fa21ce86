"""The README's Python example runs as written and shows what it promises."""

import contextlib
import io
import os
import re

import pytest

import isolation

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                      'README.md')


def _python_blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r'```python\n(.*?)```', text, flags=re.S)


@isolation.fresh_process  # Heavy jit work: see `isolation`.
def test_readme_python_examples_run():
  """The examples run in order in one namespace, as a reader pastes them."""
  blocks = _python_blocks()
  assert len(blocks) == 4, ('the README holds the main example, the ways in, '
                            'the export and the protocols')
  output = io.StringIO()
  namespace = {}
  with contextlib.redirect_stdout(output):
    for block in blocks:
      exec(compile(block, 'README.md', 'exec'), namespace)  # pylint: disable=exec-used
  printed = output.getvalue()
  for name in ('function', 'keras', 'stochastic'):
    found = re.search(name + r': (\d+) samples, clean ([0-9.]+), PGD ([0-9.]+)',
                      printed)
    assert found, printed
    assert float(found.group(2)) > 0.85, (name, printed)
    assert 0.0 <= float(found.group(3)) <= float(found.group(2))
  exported = float(re.search(r'exported max difference ([0-9.e-]+)',
                             printed).group(1))
  assert exported < 1e-5
  apgd_acc, square_acc, certified = map(float, re.search(
      r'APGD ([0-9.]+) Square ([0-9.]+) certified ([0-9.]+)', printed).groups())
  assert certified <= min(apgd_acc, square_acc)
  assert re.search(r'nonzero_gradients_expected (ok|WARN)', printed)
  # The function-backed ensemble is the HMC posterior, written by hand.
  np_clean = re.search(r'function: 50 samples, clean ([0-9.]+)', printed)
  assert np_clean and float(np_clean.group(1)) == pytest.approx(
      namespace['posterior'].accuracy(namespace['x'], namespace['y']),
      abs=1e-3)
  clean = float(re.search(r'clean ([0-9.]+)', printed).group(1))
  fgsm = float(re.search(r'FGSM ([0-9.]+)', printed).group(1))
  acceptance = float(re.search(r'HMC acceptance ([0-9.]+)', printed).group(1))
  assert clean > 0.9
  assert 0.0 <= fgsm <= 1.0
  assert 0.3 < acceptance <= 1.0
  assert namespace['posterior'].num_samples == 50


def test_readme_ci_command_matches_ci_script():
  with open(README) as f:
    readme = f.read()
  ci = os.path.join(os.path.dirname(README), '.ci', 'run')
  with open(ci) as f:
    script = f.read()
  command = re.search(r'^(pip install -e "\.\[test\]" && .*)$', readme,
                      flags=re.M).group(1)
  assert command in script
