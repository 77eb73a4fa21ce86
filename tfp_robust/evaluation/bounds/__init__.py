"""Bound propagation over a sample axis, for `evaluation.certify`.

- `ops`: network layers as bound operations (interval and linear).
- `crown`: CROWN and alpha-CROWN backward linear bounds on logit margins.
- `keras`: reading `tf_keras` models into bound operations.
"""
