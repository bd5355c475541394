"""Pretraining step parity with the original run_pretraining.py.

Oracle: ../shared/reference/model/pretrain_tiny/ (README §3): the original model_fn
(BertModel + MLM/NSP heads + create_optimizer) run for 20 steps with pre-increment
learning-rate reads. Our step is the runner's training step
(`runner.build_trainer`, the step `runner.train` runs) on
`run_pretraining.PretrainingTask`; the same task through `runner.train` itself
(checkpoints, input pipeline) is checked at the end.
"""
import collections
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, require
import checkpoints
import modeling
import run_pretraining
import runner

REF = REFERENCE / "model" / "pretrain_tiny"
LOG_KEYS = {"total_loss": "loss", "masked_lm_loss": "masked_lm_loss",
            "next_sentence_loss": "next_sentence_loss",
            "learning_rate": "learning_rate",
            "global_grad_norm": "global_norm"}


class _Setup(object):
  """Model, optimizer, global_step and one compiled step, shared by the tests."""

  def __init__(self):
    require(REF / "model.ckpt-20.index")
    self.log = json.loads((REF / "train_log.json").read_text())
    settings = self.log["settings"]
    self.config = modeling.BertConfig.from_json_file(str(REF / "bert_config.json"))
    self.task = run_pretraining.PretrainingTask(self.config)
    batches = np.load(REF / "batches.npz")
    self.batches = {k: batches[k] for k in batches.files}
    self.trainer = runner.build_trainer(
        runner.RunConfig(None), self.task, settings["lr"], settings["steps"],
        settings["warmup"], train_batch_size=settings["B"])
    self.model = self.trainer.model
    self.named = self.model.named_variables()
    self.global_step = self.trainer.state.global_step
    self.state = self.trainer.state.named_state()

  def features(self, k):
    return {name: tf.constant(v[k]) for name, v in self.batches.items()}

  def step(self, features):
    """One training step of the runner on exactly this batch."""
    iterator = self.trainer.make_iterator(
        lambda params: tf.data.Dataset.from_tensors(features))
    return self.trainer.run_steps(iterator, 1)

  def restore(self, name):
    checkpoints.restore(self.state, str(REF / name))


@pytest.fixture(scope="module")
def setup():
  return _Setup()


def _assert_state_close(state, prefix, rtol, atol):
  """Every tensor of `state` against the original checkpoint `prefix`."""
  reader = tf.train.load_checkpoint(str(prefix))
  worst = {}
  for name, var in state.items():
    got = var.numpy()
    want = reader.get_tensor(name)
    if name == "global_step":
      assert int(got) == int(want)
      continue
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
    worst[name] = float(np.abs(got - want).max())
  return max(worst.values())


def test_variable_names_order_and_initialisers(setup):
  grads = np.load(REF / "grads_step3.npz")
  # Same names, in the original's creation order (that of grads_step3.npz).
  assert list(setup.named) == list(grads.files)
  keys = json.loads((REF / "checkpoint_keys.json").read_text())["model.ckpt-0"]
  assert {k["name"] for k in keys} == set(setup.state)
  shapes = {k["name"]: k["shape"] for k in keys}
  for name, var in setup.named.items():
    assert var.shape.as_list() == shapes[name], name
    assert var.dtype == tf.float32 and var.trainable
  # Original initialisers of a fresh model (before any restore).
  fresh = run_pretraining.PretrainingModel(setup.config).named_variables()
  heads = [n for n in fresh if n.startswith("cls/")]
  assert heads == ["cls/predictions/transform/dense/kernel",
                   "cls/predictions/transform/dense/bias",
                   "cls/predictions/transform/LayerNorm/beta",
                   "cls/predictions/transform/LayerNorm/gamma",
                   "cls/predictions/output_bias",
                   "cls/seq_relationship/output_weights",
                   "cls/seq_relationship/output_bias"]
  for name in heads:
    value = fresh[name].numpy()
    if name.endswith("gamma"):
      np.testing.assert_array_equal(value, 1.0)
    elif name.endswith(("bias", "beta")):
      np.testing.assert_array_equal(value, 0.0)
    else:   # truncated normal, stddev initializer_range (0.02), cut at 2 sigma
      assert np.abs(value).max() <= 0.04 + 1e-7 and value.std() > 0.01


def test_gradients_at_ckpt3_match_original(setup):
  setup.restore("model.ckpt-3")
  loss, logs, grads = setup.trainer.gradients(setup.features(3))
  named = collections.OrderedDict(
      (n, v) for n, v in setup.named.items() if v.trainable)
  ref = np.load(REF / "grads_step3.npz")
  entry = setup.log["steps"][3]
  np.testing.assert_allclose(float(loss), entry["total_loss"], rtol=1e-5)
  np.testing.assert_allclose(float(logs["masked_lm_loss"]),
                             entry["masked_lm_loss"], rtol=1e-5)
  np.testing.assert_allclose(float(logs["next_sentence_loss"]),
                             entry["next_sentence_loss"], rtol=1e-5)
  assert list(named) == list(ref.files)
  norm_sq = 0.0
  for name, grad in zip(named, grads):
    got = tf.convert_to_tensor(grad).numpy()
    want = ref[name]
    norm_sq += float((want.astype(np.float64) ** 2).sum())
    # rel 1e-5 of the variable's largest gradient; attention key biases have a
    # mathematically zero gradient (~1e-12 of round-off on both sides).
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale + 1e-8,
                               err_msg=name)
  np.testing.assert_allclose(np.sqrt(norm_sq), entry["global_grad_norm"],
                             rtol=1e-5)


def test_one_step_from_ckpt3_lands_on_ckpt4(setup):
  setup.restore("model.ckpt-3")
  assert int(setup.global_step.numpy()) == 3
  out = setup.step(setup.features(3))
  entry = setup.log["steps"][3]
  assert float(out["learning_rate"]) == np.float32(entry["learning_rate"])
  for ref_key, our_key in LOG_KEYS.items():
    np.testing.assert_allclose(float(out[our_key]), entry[ref_key], rtol=1e-5,
                               err_msg=ref_key)
  assert int(setup.global_step.numpy()) == 4
  worst = _assert_state_close(setup.state, REF / "model.ckpt-4", rtol=0,
                              atol=1e-6)
  assert worst < 1e-6


def test_twenty_steps_from_ckpt0_reproduce_log_and_ckpt20(setup, tmp_path):
  setup.restore("model.ckpt-0")
  assert int(setup.global_step.numpy()) == 0
  for k, entry in enumerate(setup.log["steps"]):
    assert entry["global_step"] == k and entry["batch_index"] == k
    out = setup.step(setup.features(k))
    for ref_key, our_key in LOG_KEYS.items():
      np.testing.assert_allclose(float(out[our_key]), entry[ref_key], rtol=1e-5,
                                 atol=1e-12, err_msg="step %d %s" % (k, ref_key))
  assert int(setup.global_step.numpy()) == 20
  _assert_state_close(setup.state, REF / "model.ckpt-20", rtol=1e-5, atol=1e-5)
  # Saved by our checkpoint writer: the same keys, shapes and dtypes.
  prefix = checkpoints.save(str(tmp_path), setup.global_step, setup.state)
  ours = {n: s for n, s in tf.train.list_variables(prefix)}
  keys = json.loads((REF / "checkpoint_keys.json").read_text())["model.ckpt-20"]
  assert ours == {k["name"]: k["shape"] for k in keys}
  reader = tf.train.load_checkpoint(prefix)
  dtypes = reader.get_variable_to_dtype_map()
  assert {n: dtypes[n].name for n in ours} == {k["name"]: k["dtype"] for k in keys}


def test_runner_train_reproduces_original_20_steps(tmp_path):
  """The pretraining task through the script's loop (runner.train) from the
  original's model.ckpt-0 on the saved batches lands on its model.ckpt-20."""
  require(REF / "model.ckpt-20.index")
  settings = json.loads((REF / "train_log.json").read_text())["settings"]
  out = tmp_path / "out"
  out.mkdir()
  for suffix in (".index", ".data-00000-of-00001"):
    shutil.copy(REF / ("model.ckpt-0" + suffix), out)
  (out / "checkpoint").write_text(
      'model_checkpoint_path: "model.ckpt-0"\n'
      'all_model_checkpoint_paths: "model.ckpt-0"\n')
  batches = np.load(REF / "batches.npz")
  stream = {k: batches[k].reshape((-1,) + batches[k].shape[2:])
            for k in batches.files}

  def input_fn(params):
    d = tf.data.Dataset.from_tensor_slices(stream)
    return d.batch(params["batch_size"], drop_remainder=True)

  config = modeling.BertConfig.from_json_file(str(REF / "bert_config.json"))
  task = run_pretraining.PretrainingTask(config)
  cfg = runner.RunConfig(str(out), iterations_per_loop=20,
                         save_checkpoints_steps=20, log_steps=20)
  step = runner.train(cfg, task, input_fn, settings["steps"], settings["warmup"],
                      settings["lr"], train_batch_size=settings["B"])
  assert step == 20
  ours = tf.train.load_checkpoint(str(out / "model.ckpt-20"))
  ref = tf.train.load_checkpoint(str(REF / "model.ckpt-20"))
  ref_map = ref.get_variable_to_shape_map()
  assert ours.get_variable_to_shape_map() == ref_map
  for name in ref_map:
    np.testing.assert_allclose(ours.get_tensor(name), ref.get_tensor(name),
                               rtol=1e-5, atol=1e-5, err_msg=name)
