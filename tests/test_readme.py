"""The README's Python example runs as written and shows what it promises."""

import contextlib
import io
import os
import re

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                      'README.md')


def _python_blocks():
  with open(README) as f:
    text = f.read()
  return re.findall(r'```python\n(.*?)```', text, flags=re.S)


def test_readme_python_example_runs():
  blocks = _python_blocks()
  assert len(blocks) == 1, 'the README should hold exactly one Python example'
  output = io.StringIO()
  namespace = {}
  with contextlib.redirect_stdout(output):
    exec(compile(blocks[0], 'README.md', 'exec'), namespace)  # pylint: disable=exec-used
  printed = output.getvalue()
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
