"""Evaluating a model from elsewhere (binaries/evaluate.py).

The data set and the attack settings; the model comes by --model. `cpu`:
500 test images, 250 samples at most, the strong protocol; `paper`: the
whole test set.
"""

import ml_collections

from tfp_robust import config_lib


def get_config(variant='cpu'):
  paper = config_lib.check_variant(variant)
  config = ml_collections.ConfigDict()
  config.variant = variant
  config.dataset = 'mnist'          # or 'fashion_mnist'
  config.data_dir = ''              # '' means $TFDS_DATA_DIR
  config.seed = 0
  config.attack = config_lib.attack_section(
      protocol='strong', num_points=10000 if paper else 500)
  return config
