"""The paper's experiments, wiring data, fit, ensemble and evaluation.

- `paper`: Table 1 and friends on saved ensembles.
- `halfmoons`: Figure 1's cells; `grid/`: Figure 4's grids.
- `samplers`: which sampler mixes; `ablations`: the original pipeline replayed.
- `reproduce`: the paper in one command; `paper_numbers`: its printed numbers.
- `benchmarks`: speed and memory, as ratios within one run.
"""
