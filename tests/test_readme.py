"""The README's Python example runs as written, shows what it promises, and
writes no warning of ours to stderr."""

import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')

# Warnings whose cause is ours (tfp_robust's code or the README's own
# snippets); none may reach stderr:
OUR_WARNINGS = (
    # TFP's ESS casts an inverse FFT to float inside our MCMC diagnostics.
    'casting an input of type complex',
    # Our attack loops: each compiled function must trace at most twice.
    'triggered tf.function retracing',
    # An initialiser without a seed (the snippet's tfp.layers posteriors).
    'is unseeded',
    # A function of ours (or the snippet's) AutoGraph cannot read.
    'AutoGraph could not transform',
    'Traceback',
)
# A Python warning raised from tfp_robust's own files.
# Our package's files, not a virtual environment's site-packages that sits
# inside a checkout named tfp_robust (as CI's clone does).
_OUR_SOURCE = re.compile(
    r'(?<![\w.-])tfp_robust/(?!\S*site-packages)\S+\.py:\d+: \w*Warning')
# Not ours, so allowed: TensorFlow's C++ start-up lines (oneDNN, CUDA
# probing, CPU instructions), XLA's compile notes, and tfp.layers'
# "`layer.add_variable` is deprecated" (TFP's call inside DenseFlipout).


def _python_blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r'```python\n(.*?)```', text, flags=re.S)


@pytest.fixture(scope='module')
def readme_run(tmp_path_factory):
  """The examples in order, as a reader pastes them into one script, run as
  a user runs it (TensorFlow's log level left alone)."""
  blocks = _python_blocks()
  assert len(blocks) == 4, ('the README holds the main example, the ways in, '
                            'the export and the protocols')
  script = tmp_path_factory.mktemp('readme') / 'readme_examples.py'
  script.write_text('\n'.join(blocks))
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env['PYTHONPATH'] = os.pathsep.join(
      [REPO] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  result = subprocess.run([sys.executable, str(script)], cwd=str(script.parent),
                          env=env, capture_output=True, text=True,
                          timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def test_readme_python_examples_run(readme_run):
  printed = readme_run.stdout
  for name in ('function', 'keras', 'stochastic'):
    found = re.search(name + r': (\d+) samples, clean ([0-9.]+), PGD ([0-9.]+)',
                      printed)
    assert found, printed
    assert float(found.group(2)) > 0.85, (name, printed)
    assert 0.0 <= float(found.group(3)) <= float(found.group(2))
  exported = float(re.search(r'exported max difference ([0-9.e+-]+)',
                             printed).group(1))
  assert exported < 1e-5
  apgd_acc, square_acc, certified = map(float, re.search(
      r'APGD ([0-9.]+) Square ([0-9.]+) certified ([0-9.]+)', printed).groups())
  assert certified <= min(apgd_acc, square_acc)
  assert re.search(r'nonzero_gradients_expected (ok|WARN)', printed)
  # The function-backed ensemble is the HMC posterior, written by hand.
  clean = float(re.search(r'\) clean ([0-9.]+)', printed).group(1))
  by_hand = re.search(r'function: 50 samples, clean ([0-9.]+)', printed)
  assert by_hand and float(by_hand.group(1)) == pytest.approx(clean,
                                                              abs=1e-3)
  fgsm = float(re.search(r'FGSM ([0-9.]+)', printed).group(1))
  acceptance = float(re.search(r'HMC acceptance ([0-9.]+)', printed).group(1))
  assert clean > 0.9
  assert 0.0 <= fgsm <= 1.0
  assert 0.3 < acceptance <= 1.0
  # Every number is formatted: no raw float such as 0.36000001430511475.
  assert not re.search(r'\d\.\d{5,}', printed), printed


def test_readme_examples_write_no_warning_of_ours(readme_run):
  stderr = readme_run.stderr
  found = [text for text in OUR_WARNINGS if text in stderr]
  found += _OUR_SOURCE.findall(stderr)
  assert not found, (found, stderr[-5000:])


def test_readme_ci_command_matches_ci_script():
  with open(README) as f:
    readme = f.read()
  ci = os.path.join(os.path.dirname(README), '.ci', 'run')
  with open(ci) as f:
    script = f.read()
  command = re.search(r'^(pip install -e "\.\[test\]" && .*)$', readme,
                      flags=re.M).group(1)
  assert command in script
