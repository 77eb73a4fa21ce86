"""Evaluating a posterior ensemble: it reads models only through their interface.

- `gradients`: input gradients of the attack losses.
- `metrics`, `calibration`: accuracy, robustness and calibration figures.
- `checks`: sanity checks on an evaluation (gradient masking and friends).
- `protocols`: the paper's attacks or the strong protocol, as rows.
- `certify` and `bounds/`: certified bounds (IBP, CROWN, alpha-CROWN).
- `rows`: attack rows and gradient statistics of one ensemble.
- `card`, `card_report`, `instrumented`: the evaluation card.
"""
