"""Evaluating a model from elsewhere (binaries/evaluate.py): the card.

The data set and the attack settings; the model comes by --model, the data
by --data (an .npz file or a TFDS name; `dataset` otherwise). `cpu`: 500
test points, 250 samples at most, the strong protocol; `paper`: the whole
test set. A model that resamples on every call is attacked with
`attack.eot_iter` calls per gradient (AutoAttack's randomised version uses
20); the binary's flags --repeats, --square_eot and --certify set the rest
of the card's settings.
"""

import ml_collections

from tfp_robust.core import config_lib


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.dataset = 'mnist'          # any prepared TFDS dataset, half_moons
  config.data_dir = ''              # '' means $TFDS_DATA_DIR
  config.seed = 0
  config.attack = config_lib.attack_section(
      protocol='strong', num_points=10000 if paper else 500, eot_iter=20)
  return config
