"""Table 2: a deterministic net, a deep ensemble and a VI BNN under attack.

The paper's appendix calls the network 'the same network used in Section
5.2' and points to its Table 4 (a conv net), while Section 5.2 says Table 2
uses 'the same network employed in Table 1'. We take the Table 1 network
(784-1024-10 ReLU, batch 256, 5 epochs, learning rate 0.001) for all three.
`paper`: a deep ensemble of 100; `cpu`: smaller in the ensemble (10 members).
Attacks on 1000 test images, FGSM and PGD (15 steps, 1 restart), eps 0.1.
"""

from tfp_robust.core import config_lib as common


def get_config(variant='cpu'):
  paper = common.check_variant(variant)
  config = common.base(variant)
  # The certified rows: IBP and CROWN (linear relaxation) beside it.
  config.attack.certify_method = 'crown'
  config.methods = ('sgd', 'ensemble', 'vi')
  config.attack.attacks = ('fgsm', 'pgd')
  config.attack.num_points = 1000
  config.sgd = common.dense((1024,), 'relu', epochs=5, batch_size=256,
                            learning_rate=1e-3)
  config.ensemble = dict(num_members=100 if paper else 10)
  config.vi = common.dense((1024,), 'relu', epochs=5, batch_size=256,
                           learning_rate=1e-3, num_samples=250)
  return config
