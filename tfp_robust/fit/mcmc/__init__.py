"""MCMC over network weights: sampler kernels, the checkpointed driver,
checkpoints and diagnostics (see `tfp_robust.fit.hmc` for the network target),
and the network target summed across devices (`distributed`)."""
