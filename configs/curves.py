"""Robustness curves: adversarial and certified accuracy against eps.

The Table 1 models (`configs/table1.py`, same variant) plus a deterministic
net and a deep ensemble of the Table 2 network, each attacked under the
paper's protocol and the strong one at eps in (0, 0.01, 0.02, 0.05, 0.1,
0.15, 0.2, 0.3), with the certified accuracy (IBP, and CROWN beside it:
`--config.attack.certify_method=crown|alpha_crown|ibp`; the band takes the
tightest and `curves_band` names it) and the paper's softmax robustness
beside. `cpu`: 200 test images, 100 posterior samples, an
ensemble of 5; `paper`: 500 images, 250 samples, an ensemble of 100.
Fashion-MNIST: --config.dataset=fashion_mnist.
"""

import os

from tfp_robust.core import config_lib


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = config_lib.load_config_file(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), 'table1.py'),
      variant)
  config.methods = ('sgd', 'ensemble', 'vi', 'hmc')
  config.ensemble = dict(num_members=100 if paper else 5)
  config.attack.eps = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
  config.attack.num_points = 500 if paper else 200
  config.attack.num_samples = 250 if paper else 100
  config.attack.protocols = ('paper', 'strong')
  return config
