"""Fitting a posterior: deterministic nets and deep ensembles, VI, HMC.

- `models`: deterministic nets and deep ensembles (tf_keras).
- `vi`: variational inference with Flipout layers.
- `hmc` and `mcmc/`: HMC on the full-batch log-joint; samplers, the
  checkpointed driver, checkpoints and diagnostics.
- `original`: the original code's HMC posterior, replayed.
- `fitting`: a config in, a saved posterior out.
"""
