"""Figures 2 and 3: expected loss gradients versus the number of samples.

`paper` (Tables 3 and 4 of the paper): HMC on a 784-1024-1024-10 ReLU net,
500 kept samples, 10 leapfrog steps, step 0.002 (MNIST) / 0.001 (Fashion)
as the start of step-size adaptation, all 60k training images; VI on a conv
net (two 5x5 conv + 2x2 max-pool blocks of 32 and 64 filters, then a dense
layer of 512 (MNIST) / 1024 (Fashion) leaky-ReLU units), 5 / 10 epochs,
learning rate 0.01 / 0.001.
`cpu`: smaller in the HMC net (2 x 128 instead of 2 x 1024), its training
set (the first 20k images, full-batch) and its kept samples (200 instead of
500), with chains started from SGD solutions; and in the conv net (16 and 32
filters, dense 128, 2 epochs, 100 samples).
Gradients on 1000 test images for n in `num_samples`; Figure 2 shows
`num_images` heatmaps for n in `heatmap_samples`.
Fashion-MNIST: --config.dataset=fashion_mnist (then also set the step size
and VI settings per the paper's tables, as `get_config('paper_fashion')`).
"""

from tfp_robust.core import config_lib as common


def get_config(variant='cpu'):
  fashion = variant.endswith('_fashion')
  variant = variant.replace('_fashion', '')
  paper = common.check_variant(variant)
  config = common.base(variant, 'fashion_mnist' if fashion else 'mnist')
  config.methods = ('hmc', 'vi')
  config.hmc = common.dense(
      (1024, 1024) if paper else (128, 128), 'relu',
      num_results=250 if paper else 100, num_chains=2,
      num_burnin_steps=200 if paper else 100, num_leapfrog_steps=10,
      step_size=0.001 if fashion else 0.002, thinning=1, segment_size=25,
      prior_scale=1.0, init='sgd', num_train=0 if paper else 20000,
      warm_up_checkpoint_every=25 if paper else 0)
  config.hmc.init_sgd = dict(epochs=3, batch_size=256, learning_rate=1e-3)
  if paper:
    config.vi = common.conv((32, 64), 1024 if fashion else 512, 'leaky_relu',
                            epochs=10 if fashion else 5, batch_size=256,
                            learning_rate=0.001 if fashion else 0.01,
                            num_samples=500)
  else:
    config.vi = common.conv((16, 32), 128, 'leaky_relu', epochs=2,
                            batch_size=128, learning_rate=0.001,
                            num_samples=100)
  config.sgd = common.dense((1024,), 'relu', epochs=5, batch_size=256,
                            learning_rate=1e-3)
  config.gradients = dict(num_points=1000, num_samples=(1, 10, 50, 100),
                          heatmap_samples=(1, 10, 100), num_images=3)
  if paper:
    config.gradients.num_samples = (1, 10, 50, 100, 250, 500)
  return config
