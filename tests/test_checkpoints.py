"""Tests for checkpoints.py against the original's Saver output.

reference/model/pretrain_tiny/ holds checkpoints the original run_pretraining
wrote with tf.compat.v1 Saver (sharded, relative paths): 139 keys = 46
variables + adam_m + adam_v + global_step (int64). Our writer must produce the
same listing (names, shapes, dtypes) and round-trip bitwise.
"""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, require
import checkpoints
import modeling

MODEL_REF = REFERENCE / "model"
PRETRAIN = MODEL_REF / "pretrain_tiny"
MINILM = MODEL_REF / "minilm_ckpt"
TINY = MODEL_REF / "forward" / "tiny_random_ckpt"


def _listing(prefix):
  reader = tf.train.load_checkpoint(str(prefix))
  dtypes = reader.get_variable_to_dtype_map()
  return [(name, list(shape), dtypes[name].name)
          for name, shape in tf.train.list_variables(str(prefix))]


def _variables_from(prefix):
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: tf.Variable(tf.zeros(shape, reader.get_variable_to_dtype_map()
                                     [name]))
          for name, shape in tf.train.list_variables(str(prefix))}


def test_saved_checkpoint_matches_original_saver_output(tmp_path):
  """Load model.ckpt-0 (weights, slots, global_step), save, compare listing."""
  require(PRETRAIN / "checkpoint_keys.json")
  keys = json.loads((PRETRAIN / "checkpoint_keys.json").read_text())
  original = [(k["name"], k["shape"], k["dtype"])
              for k in keys["model.ckpt-0"]]
  assert len(original) == 139
  assert ("global_step", [], "int64") in original

  # The bert/* part of the names is exactly what our BertModel creates.
  config = modeling.BertConfig.from_json_file(str(PRETRAIN /
                                                  "bert_config.json"))
  model = modeling.BertModel(config)
  weights = [n for n, _, _ in original if not n.endswith(("/adam_m",
                                                          "/adam_v"))]
  assert sorted(model.named_variables()) == sorted(
      n for n in weights if n.startswith("bert/"))

  named = _variables_from(PRETRAIN / "model.ckpt-0")
  assert named["global_step"].dtype == tf.int64
  checkpoints.restore(named, str(PRETRAIN / "model.ckpt-0"))
  # bert/* from the model's own variables (original names).
  for name, var in model.named_variables().items():
    var.assign(named[name])
    named[name] = var
  prefix = checkpoints.save(str(tmp_path), 0, named)
  assert prefix == str(tmp_path / "model.ckpt-0")
  assert sorted(os.listdir(tmp_path)) == [
      "checkpoint", "model.ckpt-0.data-00000-of-00001", "model.ckpt-0.index"]
  assert _listing(prefix) == original == _listing(PRETRAIN / "model.ckpt-0")

  # Bitwise round trip, and in fact byte-identical files to the original's.
  ours = tf.train.load_checkpoint(prefix)
  theirs = tf.train.load_checkpoint(str(PRETRAIN / "model.ckpt-0"))
  for name, _, _ in original:
    a, b = ours.get_tensor(name), theirs.get_tensor(name)
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
  for suffix in (".index", ".data-00000-of-00001"):
    assert (open(prefix + suffix, "rb").read() ==
            open(str(PRETRAIN / "model.ckpt-0") + suffix, "rb").read())

  # The state file works with the stock reader.
  assert tf.train.latest_checkpoint(str(tmp_path)) == prefix
  assert checkpoints.latest_checkpoint(str(tmp_path)) == prefix
  assert (tmp_path / "checkpoint").read_text() == (
      'model_checkpoint_path: "model.ckpt-0"\n'
      'all_model_checkpoint_paths: "model.ckpt-0"\n')


def test_restore_resumes_exactly_and_round_trips(tmp_path):
  require(PRETRAIN / "model.ckpt-20.index")
  named = _variables_from(PRETRAIN / "model.ckpt-20")
  # A directory resolves through its `checkpoint` file (-> model.ckpt-20).
  assert checkpoints.restore(named, str(PRETRAIN)) == str(
      PRETRAIN / "model.ckpt-20")
  assert int(named["global_step"].numpy()) == 20
  prefix = checkpoints.save(str(tmp_path), named["global_step"], named)
  assert prefix.endswith("model.ckpt-20")
  again = {n: tf.Variable(tf.zeros_like(v)) for n, v in named.items()}
  checkpoints.restore(again, str(tmp_path))
  for name in named:
    assert named[name].numpy().tobytes() == again[name].numpy().tobytes()


def test_save_keeps_newest_and_is_atomic(tmp_path):
  named = {"w": tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)),
           "global_step": tf.Variable(0, dtype=tf.int64)}
  for step in range(1, 6):
    named["global_step"].assign(step)
    checkpoints.save(str(tmp_path), step, named, keep_checkpoint_max=2)
  files = sorted(os.listdir(tmp_path))
  assert files == ["checkpoint",
                   "model.ckpt-4.data-00000-of-00001", "model.ckpt-4.index",
                   "model.ckpt-5.data-00000-of-00001", "model.ckpt-5.index"]
  assert (tmp_path / "checkpoint").read_text() == (
      'model_checkpoint_path: "model.ckpt-5"\n'
      'all_model_checkpoint_paths: "model.ckpt-4"\n'
      'all_model_checkpoint_paths: "model.ckpt-5"\n')
  # keep_checkpoint_max=0 keeps everything.
  checkpoints.save(str(tmp_path), 6, named, keep_checkpoint_max=0)
  checkpoints.save(str(tmp_path), 7, named, keep_checkpoint_max=None)
  assert len([f for f in os.listdir(tmp_path) if f.endswith(".index")]) == 4
  # bf16/fp16 values are written as float32; other names keep their dtype.
  out = checkpoints.save(str(tmp_path / "cast"), 1, {
      "a": tf.Variable(tf.ones([2], tf.bfloat16)),
      "global_step": tf.Variable(3, dtype=tf.int32)})
  assert _listing(out) == [("a", [2], "float32"),
                           ("global_step", [], "int64")]


def test_save_failure_leaves_no_named_checkpoint(tmp_path):
  good = {"w": tf.Variable([1.0])}
  checkpoints.save(str(tmp_path), 1, good)

  class _Broken(object):

    def read_value(self):
      raise tf.errors.InternalError(None, None, "device lost")

  with pytest.raises(tf.errors.InternalError):
    checkpoints.save(str(tmp_path), 2, {"w": _Broken()})
  assert sorted(os.listdir(tmp_path)) == [
      "checkpoint", "model.ckpt-1.data-00000-of-00001", "model.ckpt-1.index"]
  assert checkpoints.latest_checkpoint(str(tmp_path)).endswith("model.ckpt-1")


def test_normalize_checkpoint_path_variants(tmp_path):
  prefix = str(require(MINILM / "bert_model.ckpt.index"))[:-len(".index")]
  for variant in (prefix, prefix + ".index",
                  prefix + ".data-00000-of-00001", prefix + ".meta",
                  str(MINILM), str(MINILM) + "/"):
    assert checkpoints.normalize_checkpoint_path(variant) == prefix, variant
  assert len(checkpoints.list_variables(prefix + ".index")) == 103
  # A state file copied from another machine (absolute paths) still works.
  shutil.copy(prefix + ".index", tmp_path / "bert_model.ckpt.index")
  shutil.copy(prefix + ".data-00000-of-00001",
              tmp_path / "bert_model.ckpt.data-00000-of-00001")
  (tmp_path / "checkpoint").write_text(
      'model_checkpoint_path: "/elsewhere/run/bert_model.ckpt"\n')
  assert checkpoints.normalize_checkpoint_path(str(tmp_path)) == str(
      tmp_path / "bert_model.ckpt")
  for name in os.listdir(tmp_path):
    os.remove(tmp_path / name)
  # Several bundles and no state file: ambiguous.
  for step in (1, 2):
    checkpoints.save(str(tmp_path), step, {"w": tf.Variable([1.0])})
  os.remove(tmp_path / "checkpoint")
  with pytest.raises(ValueError, match="several checkpoints"):
    checkpoints.normalize_checkpoint_path(str(tmp_path))


def test_missing_checkpoint_files_lists_expected_and_found(tmp_path):
  src = require(TINY / "bert_model.ckpt.index")
  shutil.copy(src, tmp_path / "bert_model.ckpt.index")
  shutil.copy(TINY / "bert_config.json", tmp_path / "bert_config.json")
  with pytest.raises(FileNotFoundError) as info:
    checkpoints.normalize_checkpoint_path(str(tmp_path / "bert_model.ckpt"))
  message = str(info.value)
  assert "expected the files bert_model.ckpt.index, " \
      "bert_model.ckpt.data-00000-of-00001" in message
  assert "missing bert_model.ckpt.data-00000-of-00001" in message
  assert "found in %s: bert_model.ckpt.index" % tmp_path in message
  with pytest.raises(FileNotFoundError, match="bert_config.json"):
    checkpoints.init_from_checkpoint({}, str(tmp_path / "nothing.ckpt"))
  os.mkdir(tmp_path / "empty_dir")
  with pytest.raises(FileNotFoundError, match="No checkpoint in directory"):
    checkpoints.normalize_checkpoint_path(str(tmp_path / "empty_dir"))


def test_init_from_checkpoint_report(caplog):
  require(TINY / "bert_model.ckpt.index")
  config = modeling.BertConfig.from_json_file(str(TINY / "bert_config.json"))
  model = modeling.BertModel(config)
  named = model.named_variables()
  named["output_weights"] = modeling.create_variable("output_weights",
                                                     [2, 64])
  before = named["output_weights"].numpy().copy()
  checkpoints.set_verbose_init(True)  # the original's per-variable lines
  try:
    # absl's logger by name: an earlier test in this worker may have set its
    # verbosity to WARNING.
    with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
      report = checkpoints.init_from_checkpoint(named, str(TINY))
  finally:
    checkpoints.set_verbose_init(False)
  assert len(report.loaded) == 39
  assert report.missing == ["output_weights"]
  assert report.unused == []
  np.testing.assert_array_equal(named["output_weights"].numpy(), before)
  reader = tf.train.load_checkpoint(str(TINY / "bert_model.ckpt"))
  for name in report.loaded:
    np.testing.assert_array_equal(named[name].numpy(), reader.get_tensor(name))
  text = caplog.text
  assert ("  name = bert/embeddings/word_embeddings:0, shape = (512, 64), "
          "*INIT_FROM_CKPT*") in text
  assert "  name = output_weights:0, shape = (2, 64)\n" in text
  assert "Initialized 39 of 40 model variables" in text
  # Extra checkpoint variables are reported as unused, not an error.
  tiny = modeling.BertModel(modeling.BertConfig.from_json_file(
      str(TINY / "bert_config.json")))
  partial = {k: v for k, v in tiny.named_variables().items()
             if not k.startswith("bert/pooler")}
  report = checkpoints.init_from_checkpoint(partial, str(TINY), log=False)
  assert report.unused == ["bert/pooler/dense/bias",
                           "bert/pooler/dense/kernel"]


def test_shape_mismatch_names_variable_shapes_and_cause():
  require(TINY / "bert_model.ckpt.index")
  config = modeling.BertConfig.from_json_file(str(TINY / "bert_config.json"))
  config.vocab_size = 600  # the checkpoint has 512 rows
  model = modeling.BertModel(config)
  named = model.named_variables()
  before = named["bert/pooler/dense/kernel"].numpy().copy()
  with pytest.raises(ValueError) as info:
    checkpoints.init_from_checkpoint(named, str(TINY))
  message = str(info.value)
  assert "bert/embeddings/word_embeddings" in message
  assert "[600, 64]" in message and "[512, 64]" in message
  assert "vocab_size" in message and "bert_config.json" in message
  # Nothing was assigned (shapes are checked first).
  np.testing.assert_array_equal(named["bert/pooler/dense/kernel"].numpy(),
                                before)


def test_restore_requires_every_name():
  require(MINILM / "bert_model.ckpt.index")
  named = {"bert/pooler/dense/bias": tf.Variable(tf.zeros([384])),
           "bert/pooler/dense/bias/adam_m": tf.Variable(tf.zeros([384])),
           "global_step": tf.Variable(0, dtype=tf.int64)}
  with pytest.raises(ValueError, match=r"2 of 3 variables are missing.*"
                     r"--init_checkpoint"):
    checkpoints.restore(named, str(MINILM))


def test_mirrored_variables_save_and_load(tmp_path):
  strategy = tf.distribute.MirroredStrategy(["CPU:0"])
  with strategy.scope():
    named = {"w": tf.Variable(tf.ones([3])),
             "global_step": tf.Variable(7, dtype=tf.int64)}
  prefix = checkpoints.save(str(tmp_path), 7, named)
  with strategy.scope():
    again = {"w": tf.Variable(tf.zeros([3])),
             "global_step": tf.Variable(0, dtype=tf.int64)}
  checkpoints.restore(again, prefix)
  np.testing.assert_array_equal(again["w"].numpy(), [1, 1, 1])
  assert int(again["global_step"].numpy()) == 7


def test_save_uses_only_tf_io_gfile():
  """A non-local filesystem (TF's ram://, standing in for gs://) works.

  Only reading back goes through tf.train.load_checkpoint, whose directory
  detection does not suit ram:// (every prefix looks like a directory there),
  so the bundle is checked by listing the files and reading the state file.
  """
  out = "ram://bert_ckpt_test/run"
  named = {"w": tf.Variable([1.0, 2.0]),
           "global_step": tf.Variable(3, dtype=tf.int64)}
  for step in (1, 2, 3):
    prefix = checkpoints.save(out, step, named, keep_checkpoint_max=2)
  assert prefix == out + "/model.ckpt-3"
  assert sorted(tf.io.gfile.listdir(out)) == [
      "checkpoint", "model.ckpt-2.data-00000-of-00001", "model.ckpt-2.index",
      "model.ckpt-3.data-00000-of-00001", "model.ckpt-3.index"]
  assert checkpoints.latest_checkpoint(out) == prefix
  with tf.io.gfile.GFile(out + "/checkpoint") as f:
    assert f.read() == ('model_checkpoint_path: "model.ckpt-3"\n'
                        'all_model_checkpoint_paths: "model.ckpt-2"\n'
                        'all_model_checkpoint_paths: "model.ckpt-3"\n')
  with tf.io.gfile.GFile(out + "/config.json", "w") as f:
    f.write('{"vocab_size": 7, "hidden_size": 4, "num_hidden_layers": 1, '
            '"num_attention_heads": 1, "intermediate_size": 8, "extra": 1}')
  assert modeling.BertConfig.from_json_file(out + "/config.json").extra == 1
