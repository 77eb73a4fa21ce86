"""The paper in one command: its experiments as ordered steps, and the report.

- `steps`: the `Step`s in the paper's order (`STEPS`, `GROUPS`), how one
  is launched (`Launch`, `command`, `signature`) and picked (`select`).
- `markers`: what a run leaves per step (finished markers, the attempts
  of a killed or failed step, wall times) and the scale a work directory
  holds.
- `runner`: `run` (in order, skipping finished steps, resuming the rest)
  and `dry_run`.
- `report`: `<workdir>/REPORT.md`, from what the binaries wrote, with the
  paper's numbers beside ours.

The names below are the package's, as `binaries/reproduce.py` calls them.
"""

from tfp_robust.experiments.reproduce.markers import attempts_path
from tfp_robust.experiments.reproduce.markers import claim_workdir
from tfp_robust.experiments.reproduce.markers import duration
from tfp_robust.experiments.reproduce.markers import earlier_attempts
from tfp_robust.experiments.reproduce.markers import finished
from tfp_robust.experiments.reproduce.markers import log_path
from tfp_robust.experiments.reproduce.markers import marker_path
from tfp_robust.experiments.reproduce.markers import step_seconds
from tfp_robust.experiments.reproduce.report import build_report
from tfp_robust.experiments.reproduce.report import REPORT
from tfp_robust.experiments.reproduce.report import write_report
from tfp_robust.experiments.reproduce.runner import dry_run
from tfp_robust.experiments.reproduce.runner import run
from tfp_robust.experiments.reproduce.steps import BINARIES
from tfp_robust.experiments.reproduce.steps import check_executor
from tfp_robust.experiments.reproduce.steps import check_scale
from tfp_robust.experiments.reproduce.steps import command
from tfp_robust.experiments.reproduce.steps import CONFIGS
from tfp_robust.experiments.reproduce.steps import GROUPS
from tfp_robust.experiments.reproduce.steps import Launch
from tfp_robust.experiments.reproduce.steps import Outcome
from tfp_robust.experiments.reproduce.steps import REPO
from tfp_robust.experiments.reproduce.steps import SCALES
from tfp_robust.experiments.reproduce.steps import select
from tfp_robust.experiments.reproduce.steps import signature
from tfp_robust.experiments.reproduce.steps import Step
from tfp_robust.experiments.reproduce.steps import step_dir
from tfp_robust.experiments.reproduce.steps import STEPS
