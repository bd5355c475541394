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


def assert_bert_outputs_close(got, want, atol):
  """Every output of two `modeling.BertOutputs` (embeddings, each layer,
  pooled) is float32 and within `atol` of the other's."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  pairs = [(got.embedding_output, want.embedding_output),
           (got.pooled_output, want.pooled_output)]
  pairs += list(zip(got.all_encoder_layers, want.all_encoder_layers))
  for mine, theirs in pairs:
    assert mine.dtype == theirs.dtype == "float32"
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), atol=atol)
