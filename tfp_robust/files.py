"""Files that are never left half-written: write elsewhere, then rename."""

import os
import tempfile


def write_text_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file in the same directory.

  A reader sees either the old file or the whole new one, never a partial
  write, and a run killed mid-write leaves only a `.tmp-*` file behind.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile('w', dir=directory, delete=False,
                                   prefix='.tmp-') as f:
    f.write(text)
  os.replace(f.name, path)
