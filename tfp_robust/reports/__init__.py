"""The last step of the flow: rows in, files out.

- `tables`: tables and text written atomically.
- `plots`: figures (matplotlib, Agg).
- `summaries`: TensorBoard summaries.
- `evidence`: evidence files and the claims table.
"""
