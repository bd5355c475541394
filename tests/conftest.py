"""Shared test helpers: where ../shared lives and how to skip without it."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BERT_SHARED_DIR", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
DATA = SHARED / "data"

# Tests import the flat project modules (modeling, tokenization, ...) from the root.
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

# Quiet TensorFlow's C++ start-up chatter in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require(path):
  """Returns `path` or skips the calling test when ../shared is not there."""
  path = Path(path)
  if not path.exists():
    pytest.skip(f"{path} not found: the reference data in ../shared is absent "
                "(set BERT_SHARED_DIR to point at it)")
  return path
