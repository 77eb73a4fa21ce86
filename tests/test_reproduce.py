"""reproduce: the paper's steps in order, resumed runs, the report, bad input.

No real experiment runs here: the runner is tested on fake steps (a tiny
script standing in for a binary), the real step list by what it names.
"""

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from tfp_robust.core import config_checks
from tfp_robust.core import config_lib
from tfp_robust.experiments import paper_numbers
from tfp_robust.experiments import reproduce
from tfp_robust.experiments.reproduce import markers
from tfp_robust.core import validate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the real step list --------------------------------------------------------

def _resolved(step, scale):
  """The step's config as its binary sees it (variant, then its flags), and
  the `--methods` it passes (None: the config's)."""
  argv = reproduce.command(step, '/tmp/w', reproduce.Launch(scale=scale))
  config_path, variant = argv[2].split('=', 1)[1].rsplit(':', 1)
  config = config_lib.load_config_file(config_path, variant)
  methods = None
  for flag in argv[3:-1]:
    name, value = flag[2:].split('=', 1)
    if name.startswith('config.'):
      *path, field = name.split('.')[1:]
      section = config
      for key in path:
        section = section[key]
      assert field in section, (step.name, flag)
      # As config_flags parses it: a tuple field takes a Python literal.
      section[field] = (ast.literal_eval(value)
                        if isinstance(section[field], tuple) else value)
    elif name == 'methods':
      methods = value.split(',')
  return config, methods


def test_every_experiment_config_and_group_is_run_once_per_dataset():
  """Against the files on disk: the paper's experiment configs each run,
  each group in `GROUPS` runs, in its order, and no step runs twice."""
  steps = reproduce.STEPS
  names = [s.name for s in steps]
  assert len(set(names)) == len(names)
  # Every group has steps, and a group's steps are together, in GROUPS order.
  groups = [s.group for s in steps]
  assert list(dict.fromkeys(groups)) == list(reproduce.GROUPS)
  assert all(groups.index(g) + groups.count(g) - 1 ==
             len(groups) - 1 - groups[::-1].index(g) for g in set(groups))
  # Every config of the paper's experiments (configs/ minus the project's
  # own tools) is some step's.
  tools = {'certify_check', 'evaluate', 'mixed_mnist', 'peer', 'quickstart',
           'samplers', 'table1_mixing'}
  experiments = {n[:-3] for n in os.listdir(os.path.join(REPO, 'configs'))
                 if n.endswith('.py')} - tools
  assert {s.config.split('.py')[0] for s in steps} == experiments
  # No two steps do the same work: (binary, config, flags) differ.
  launch = reproduce.Launch()
  commands = [tuple(reproduce.command(s, '/w', launch)[1:-1]) for s in steps]
  assert len(set(commands)) == len(commands)


@pytest.mark.parametrize('scale', reproduce.SCALES)
def test_steps_that_share_a_directory_come_after_the_one_that_trains(scale):
  """The strong protocol, the curves and the replay attack the ensembles the
  paper-protocol attack step trains in their shared sub-directory: per
  sub-directory and dataset (read from each step's resolved config), the
  first step is `attack.py` under the paper's protocol."""
  seen = {}
  for step in reproduce.STEPS:
    config, _ = _resolved(step, scale)
    dataset = config.get('dataset') or 'grid'
    # What the report reads lives under the dataset the config names.
    for path in step.tables + step.links + (step.summary,) * bool(
        step.summary):
      head = path.split('/')[0]
      if head in ('mnist', 'fashion_mnist'):
        assert head == dataset, (step.name, path)
    if step.dataset:
      assert step.dataset == dataset, step.name
    first = seen.setdefault((step.workdir, dataset), step)
    if first is not step:
      assert first.binary == 'attack.py', (step.name, first.name)
      first_config, _ = _resolved(first, scale)
      assert first_config.attack.protocol == 'paper', (step.name, first.name)
      # The paper step writes the checks the later ones skip.
      assert f'{dataset}/checks.md' in first.links, first.name
  # The paper's tables face our summaries of the same protocol.
  for step in reproduce.STEPS:
    if step.paper:
      assert step.paper in paper_numbers.TABLES
      assert step.summary.replace('.csv', '.md') in step.tables


def _defined_flags(binary):
  """Flags a binary defines, with those of the `_experiment` it imports."""
  with open(os.path.join(REPO, 'binaries', binary)) as f:
    source = f.read()
  defined = set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", source))
  if re.search(r'^import _experiment$', source, re.M):
    defined |= _defined_flags('_experiment.py')
  return defined


@pytest.mark.parametrize('scale', reproduce.SCALES)
def test_every_step_wires_flags_its_binary_and_config_know(scale):
  """Each binary defines the flags a step passes; each config the fields."""
  launch = reproduce.Launch(scale=scale)
  for step in reproduce.STEPS:
    argv = reproduce.command(step, '/tmp/w', launch)
    assert argv[0] == sys.executable
    assert os.path.exists(argv[1]), argv[1]
    defined = _defined_flags(step.binary)
    assert argv[2].startswith('--config=') and 'config' in defined
    config, methods = _resolved(step, scale)
    assert config.get('variant', scale) == scale
    for flag in argv[3:-1]:
      name = flag[2:].split('=', 1)[0]
      assert name.startswith('config.') or name in defined, (step.name, flag)
    config_checks.check(config, methods)
    assert argv[-1] == f'--workdir=/tmp/w/{step.workdir}'


def test_dry_run_prints_every_command_and_creates_nothing(tmp_path):
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, 'binaries/reproduce.py', '--dry_run', '--scale=paper',
       '--executor=ray', f'--workdir={workdir}'], cwd=REPO,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  commands = [line for line in result.stdout.splitlines()
              if not line.startswith('#')]
  launch = reproduce.Launch(scale='paper', executor='ray',
                            binaries=os.path.join(REPO, 'binaries'),
                            configs=os.path.join(REPO, 'configs'))
  assert [shlex.split(c) for c in commands] == [
      reproduce.command(s, str(workdir), launch) for s in reproduce.STEPS]
  grid = [s.name for s in reproduce.STEPS].index('figure4')
  assert '--executor=ray' in commands[grid] and 'grid.py' in commands[grid]
  assert sum('--executor' in c for c in commands) == 1
  assert all(':paper' in c for c in commands)
  assert result.stdout.count('would run') == len(reproduce.STEPS)
  assert not workdir.exists()


# -- the runner on fake steps -------------------------------------------------

# Stands in for a binary: records its run, fails once when asked to, and
# writes a summary table, a figure and a text file into --workdir.
_FAKE_BINARY = textwrap.dedent('''\
    import os, sys
    args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if '=' in a)
    workdir, label = args['workdir'], args['label']
    root = os.path.dirname(workdir)
    with open(os.path.join(root, 'runs.txt'), 'a') as f:
      f.write(label + '\\n')
    if os.path.exists(os.path.join(root, 'fail_' + label)):
      os.remove(os.path.join(root, 'fail_' + label))
      print('fake failure of', label)
      sys.exit(3)
    os.makedirs(os.path.join(workdir, 'mnist'), exist_ok=True)
    with open(os.path.join(workdir, 'mnist', 'summary_paper.csv'), 'w') as f:
      f.write('method,samples,clean_acc,random_acc,fgsm_expected_acc,'
              'pgd_expected_acc\\nhmc,250,0.974,0.946,0.182,0.092\\n'
              'vi,250,0.974,0.966,0.33,0.22\\n')
    with open(os.path.join(workdir, 'mnist', 'summary_paper.md'), 'w') as f:
      f.write('| method | clean_acc |\\n|---|---|\\n| hmc | 0.974 |\\n')
    with open(os.path.join(workdir, 'mnist', 'figure2_hmc.png'), 'wb') as f:
      f.write(b'png')
    with open(os.path.join(workdir, 'mnist', 'checks.md'), 'w') as f:
      f.write('checks\\n')
    print('fake step', label, 'done', args.get('executor', ''))
''')


def _fake_steps(tmp_path, **first):
  binary = tmp_path / 'fake_binary.py'
  binary.write_text(_FAKE_BINARY)
  one = dict(name='one', group='table1', binary=str(binary),
             flags=('--label=one',), workdir='shared',
             tables=('mnist/summary_paper.md',),
             figures=('mnist/figure2_*.png',), links=('mnist/checks.md',),
             paper='table1', dataset='mnist',
             summary='mnist/summary_paper.csv', about='A fake Table 1')
  one.update(first)
  return [reproduce.Step(**one),
          reproduce.Step(name='two', group='table2', binary=str(binary),
                         flags=('--label=two',), workdir='shared'),
          reproduce.Step(name='three', group='figure4', binary=str(binary),
                         flags=('--label=three',), workdir='grid',
                         takes_executor=True)]


def _runs(workdir):
  path = workdir / 'runs.txt'
  return path.read_text().split() if path.exists() else []


def _run(steps, workdir, executor='in_process'):
  output = []
  outcome = reproduce.run(steps, str(workdir),
                          reproduce.Launch(scale='cpu', executor=executor),
                          echo=output.append)
  return outcome, ''.join(output)


def test_a_resumed_run_skips_finished_steps_and_reruns_the_rest(tmp_path):
  workdir = tmp_path / 'run'
  steps = _fake_steps(tmp_path)
  workdir.mkdir()
  (workdir / 'fail_two').write_text('')
  outcome, output = _run(steps, workdir)
  # One finished, two failed, three never started.
  assert outcome.ran == ['one'] and outcome.failed[:2] == ('two', 3)
  assert _runs(workdir) == ['one', 'two']
  assert 'fake failure of two' in output
  assert 'fake failure of two' in (workdir / 'logs' / 'two.log').read_text()
  marker = json.loads((workdir / 'steps' / 'one.json').read_text())
  assert marker['command'] == reproduce.command(
      steps[0], str(workdir), reproduce.Launch())
  assert marker['seconds'] > 0 and marker['scale'] == 'cpu'
  assert not (workdir / 'steps' / 'two.json').exists()
  report = (workdir / 'REPORT.md').read_text()
  assert '**1 of 3 steps finished' in report
  assert 'failed (exit code 3)' in report and 'logs/two.log' in report

  # The failed attempt of two is on record, to be counted when it finishes.
  failed = json.loads((workdir / 'steps' / 'two.attempts.json').read_text())
  [[begun, ended]] = failed['attempts']
  assert begun <= ended
  # As if an earlier run had been killed an hour into step two.
  failed['attempts'].insert(0, [begun - 7200, begun - 3600])
  (workdir / 'steps' / 'two.attempts.json').write_text(json.dumps(failed))

  outcome, output = _run(steps, workdir, executor='ray')
  assert outcome.skipped == ['one'] and outcome.ran == ['two', 'three']
  two = json.loads((workdir / 'steps' / 'two.json').read_text())
  assert two['attempts'] == 3
  assert 3600 <= two['seconds_all_attempts'] - two['seconds'] < 3660
  assert not (workdir / 'steps' / 'two.attempts.json').exists()
  assert 'over 3 attempts' in output
  assert '| [`two`](#two) | table2 | finished | 1 h 00 min over 3 attempts' \
      in (workdir / 'REPORT.md').read_text()
  assert outcome.failed is None
  assert _runs(workdir) == ['one', 'two', 'two', 'three']
  assert 'one: finished earlier' in output
  assert 'fake step three done ray' in output  # --executor passed on

  outcome, _ = _run(steps, workdir)
  assert outcome.skipped == ['one', 'two', 'three'] and not outcome.ran
  assert _runs(workdir) == ['one', 'two', 'two', 'three']
  # A step whose command changed runs again; the others stay skipped.
  changed = _fake_steps(tmp_path, flags=('--label=one', '--other=1'))
  outcome, _ = _run(changed, workdir)
  assert outcome.ran == ['one'] and outcome.skipped == ['two', 'three']
  # A corrupt marker counts as unfinished.
  (workdir / 'steps' / 'two.json').write_text('{"seconds": ')
  outcome, _ = _run(changed, workdir)
  assert outcome.ran == ['two']
  assert not [p for p in os.listdir(workdir / 'steps')
              if p.startswith('.tmp')]


def test_dry_run_marks_finished_steps(tmp_path):
  workdir = tmp_path / 'run'
  steps = _fake_steps(tmp_path)
  _run(steps[:1], workdir)
  text = reproduce.dry_run(steps, str(workdir), reproduce.Launch())
  lines = text.splitlines()
  assert lines[0].startswith('# 1/3 one: finished (') and 'skipped' in lines[0]
  assert lines[2] == '# 2/3 two: would run'
  assert shlex.split(lines[3]) == reproduce.command(steps[1], str(workdir),
                                                    reproduce.Launch())
  assert _runs(workdir) == ['one']


def test_report_shows_a_finished_steps_table_figures_and_paper_numbers(
    tmp_path):
  workdir = tmp_path / 'run'
  steps = _fake_steps(tmp_path)
  _run(steps[:1], workdir)
  launch = reproduce.Launch()
  report = reproduce.build_report(steps, str(workdir), launch)
  # The run wrote the same section (its report covers the steps it ran).
  written = (workdir / 'REPORT.md').read_text()
  assert written.split('### `one`')[1].strip() == report.split(
      '### `one`')[1].split('## Table 2')[0].strip()
  # The step's own table, read from its file, and its figure, linked.
  table = 'shared/mnist/summary_paper.md'
  assert f'**[{table}]({table})**' in report
  assert '| hmc | 0.974 |' in report
  figure = 'shared/mnist/figure2_hmc.png'
  assert f'![{figure}]({figure})' in report
  assert '[shared/mnist/checks.md](shared/mnist/checks.md)' in report
  # The paper's Table 1 beside ours: MNIST HMC random / FGSM / PGD.
  beside = report.split("Beside the paper's Table 1")[1]
  assert ('| hmc (HMC) | 0.946 | 0.85 | 0.182 | 0.96 | 0.092 | 0.97 |'
          in beside)
  assert '| vi (VI) | 0.966 | 0.956 | 0.33 | 0.936 | 0.22 | 0.938 |' in beside
  assert (workdir / 'report' / 'one_beside_paper.csv').exists()
  # Wall times: the step's and the whole run's; unfinished steps say so.
  seconds = json.loads((workdir / 'steps' / 'one.json').read_text())['seconds']
  assert f'in **{reproduce.duration(seconds)}** by tfp_robust ' in report
  assert '**1 of 3 steps finished. Wall time of the whole run:' in report
  assert '| [`two`](#two) | table2 | not run yet |  |' in report
  assert report.index('## Table 1') < report.index('## Table 2') < \
      report.index('## Figure 4')
  assert 'fake_binary.py --label=two' in report  # the command it would run


def test_durations_read_naturally():
  assert [reproduce.duration(s) for s in (4.2, 90, 7260)] == [
      '4 s', '1.5 min', '2 h 01 min']


# -- bad input ----------------------------------------------------------------

def test_select_takes_steps_and_groups_in_order_and_refuses_unknown_names():
  steps = reproduce.STEPS
  picked = reproduce.select(steps, ['ablation_mnist', 'table2'])
  assert [s.name for s in picked] == ['table2_mnist_paper',
                                      'table2_mnist_strong', 'ablation_mnist']
  assert reproduce.select(steps, None) == list(steps)
  with pytest.raises(validate.InvalidArgument,
                     match=r"--steps='tabel1' is invalid: it must be one of "
                     r"\('figure1', .*'table1'"):
    reproduce.select(steps, ['table1', 'tabel1'])
  with pytest.raises(validate.InvalidArgument, match="--scale='gpu'"):
    reproduce.check_scale('gpu')
  with pytest.raises(validate.InvalidArgument, match="--executor='slurm'"):
    reproduce.check_executor('slurm')


def test_a_workdir_holds_one_scale(tmp_path):
  reproduce.claim_workdir(str(tmp_path), 'cpu')
  reproduce.claim_workdir(str(tmp_path), 'cpu')
  with pytest.raises(validate.InvalidArgument,
                     match=r"--scale='paper' is invalid: the work directory "
                     r'.* holds a cpu-scale run'):
    reproduce.claim_workdir(str(tmp_path), 'paper')


@pytest.mark.parametrize('flag,message', [
    ('--steps=table1,nope', "Error: --steps='nope' is invalid: it must be one "
     "of ('figure1', "),
    ('--scale=huge', "Error: --scale='huge' is invalid: it must be one of "
     "('cpu', 'paper')."),
])
def test_bad_steps_or_scale_end_with_one_clear_line(flag, message, tmp_path):
  result = subprocess.run(
      [sys.executable, 'binaries/reproduce.py', flag,
       f'--workdir={tmp_path / "run"}'], cwd=REPO, capture_output=True,
      text=True, timeout=300)
  assert result.returncode == 1
  assert message in result.stderr, result.stderr[-2000:]
  assert 'Traceback' not in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1, result.stderr
  assert not (tmp_path / 'run').exists()


def test_a_running_step_keeps_its_last_alive_time(tmp_path, monkeypatch):
  # What a killed run leaves behind: the step's start and a time at most a
  # heartbeat before the kill.
  monkeypatch.setattr(markers, 'HEARTBEAT_SECONDS', 0.05)
  binary = tmp_path / 'slow.py'
  binary.write_text(textwrap.dedent('''\
      import json, os, sys, time
      args = dict(a[2:].split('=', 1) for a in sys.argv[1:] if '=' in a)
      path = os.path.join(os.path.dirname(args['workdir']), 'steps',
                          'slow.attempts.json')
      time.sleep(1.0)
      [[start, alive]] = json.load(open(path))['attempts']
      print('alive for', alive - start)
  '''))
  step = reproduce.Step(name='slow', group='table1', binary=str(binary),
                        workdir='slow')
  outcome, output = _run([step], tmp_path / 'run')
  assert outcome.ran == ['slow']
  alive = float(output.split('alive for')[1].split()[0])
  assert 0.8 <= alive <= 1.5


def test_an_unreadable_attempt_record_is_not_counted(tmp_path):
  workdir = tmp_path / 'run'
  steps = _fake_steps(tmp_path)[:1]
  (workdir / 'steps').mkdir(parents=True)
  for text in ('null', '[]', '{"attempts": ', '{"attempts": [[2, 1]]}'):
    (workdir / 'steps' / 'one.attempts.json').write_text(text)
    assert reproduce.earlier_attempts(steps[0], str(workdir), 'cpu') == []
  outcome, _ = _run(steps, workdir)
  assert outcome.ran == ['one']
  assert json.loads((workdir / 'steps' / 'one.json').read_text())[
      'attempts'] == 1
