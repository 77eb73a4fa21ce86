"""tfp_robust: Bayesian neural networks under gradient-based attacks."""

from tfp_robust import apgd
from tfp_robust import attacks
from tfp_robust import calibration
from tfp_robust import card
from tfp_robust import certify
from tfp_robust import checks
from tfp_robust import data
from tfp_robust import ensemble
from tfp_robust import export
from tfp_robust import gradients
from tfp_robust import hmc
from tfp_robust import losses
from tfp_robust import metrics
from tfp_robust import models
from tfp_robust import networks
from tfp_robust import seeds
from tfp_robust import square
from tfp_robust import vi
from tfp_robust.ensemble import ArchitectureEnsemble
from tfp_robust.ensemble import PosteriorEnsemble
from tfp_robust.networks import Architecture

__version__ = '0.1.0'

# The code version (with the commit, in a checkout) is read once, when the
# package is imported: results then name the code that runs, even if the
# checkout moves on while a long run is going.
from tfp_robust import files as _files  # pylint: disable=g-import-not-at-top
_files.code_version()
