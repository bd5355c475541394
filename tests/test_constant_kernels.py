# coding=utf-8
"""Constant kernels (`--constant_kernels`, `modeling.constant_kernels`).

A prediction function traced inside `modeling.constant_kernels()` holds each
matmul kernel as a graph constant of the compute dtype (the variable's value at
trace time). Same values, same math: its outputs equal the variable-reading
function's up to float rounding (float32: 2e-5; bfloat16: the kernels are the
same bfloat16 values, the epilogues add the bias in bfloat16 instead of
float32, so within bfloat16 rounding of LayerNorm outputs, 1e-2), for every
`fused_blocks` path. The constants are really constants (no kernel variable
is captured), a new trace sees new weights, and a training call refuses.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_bert_outputs_close
import modeling
import run_classifier
import runner

CONFIG = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=64,
              hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def _inputs():
  rng = np.random.RandomState(0)
  ids = tf.constant(rng.randint(0, 50, (3, 8)), tf.int32)
  mask = tf.constant([[1] * 8, [1] * 5 + [0] * 3, [1] * 2 + [0] * 6], tf.int32)
  return ids, mask


def _model(dtype, mode):
  tf.random.set_seed(4)
  model = modeling.BertModel(
      modeling.BertConfig(**CONFIG),
      options=modeling.EncoderOptions(compute_dtype=dtype, fused_blocks=mode))
  for variable in model.trainable_variables:  # Biases and betas not zero.
    if variable.name.endswith("bias:0") or "beta" in variable.name:
      variable.assign(tf.random.normal(variable.shape, stddev=0.1,
                                       seed=len(variable.name)))
  return model


def _functions(model):
  def forward(ids, mask):
    return model(ids, mask, training=False)

  def constant_forward(ids, mask):
    with modeling.constant_kernels():
      return model(ids, mask, training=False)

  return tf.function(forward), tf.function(constant_forward)


def _kernel_names(model, function, ids, mask):
  """The kernels whose variable the traced graph reads (captures)."""
  captured = {id(t) for t in
              function.get_concrete_function(ids, mask).captured_inputs}
  return sorted(name for name, v in model.named_variables().items()
                if name.endswith("kernel") and id(v.handle) in captured)


@pytest.mark.parametrize("dtype,atol", [(tf.float32, 2e-5),
                                        (tf.bfloat16, 1e-2)])
@pytest.mark.parametrize("mode", [False, True, "epilogues"])
def test_constant_kernels_compute_what_the_variables_do(dtype, atol, mode):
  ids, mask = _inputs()
  model = _model(dtype, mode)
  forward, constant_forward = _functions(model)
  want, got = forward(ids, mask), constant_forward(ids, mask)
  assert_bert_outputs_close(got, want, atol)
  # The kernels are constants of the compute dtype, not variable reads.
  assert len(_kernel_names(model, forward, ids, mask)) == 2 * 6 + 1
  assert _kernel_names(model, constant_forward, ids, mask) == []
  graph = constant_forward.get_concrete_function(ids, mask).graph
  shapes = {tuple(op.outputs[0].shape) for op in graph.get_operations()
            if op.type == "Const" and op.outputs[0].dtype == dtype}
  assert {(32, 96), (32, 64), (64, 32), (32, 32)} <= shapes


def test_a_new_trace_holds_the_new_weights_and_eager_is_unaffected():
  ids, mask = _inputs()
  model = _model(tf.float32, "epilogues")
  forward, constant_forward = _functions(model)
  before = constant_forward(ids, mask).sequence_output.numpy()
  kernel = model.named_variables()[
      "bert/encoder/layer_1/intermediate/dense/kernel"]
  kernel.assign(kernel * 2.0)
  after = forward(ids, mask).sequence_output.numpy()
  assert np.abs(after - before).max() > 1e-2
  _, retraced = _functions(model)
  np.testing.assert_allclose(retraced(ids, mask).sequence_output.numpy(),
                             after, atol=2e-5)
  with modeling.constant_kernels():  # Eager: reads the variables as always.
    eager = model(ids, mask, training=False).sequence_output.numpy()
  np.testing.assert_allclose(eager, after, atol=2e-5)


def test_a_training_call_under_constant_kernels_refuses():
  ids, mask = _inputs()
  model = _model(tf.float32, False)

  @tf.function
  def train(ids):
    with modeling.constant_kernels():
      return model(ids, training=True).sequence_output

  with pytest.raises(ValueError, match="constant_kernels"):
    train(ids)


@pytest.mark.parametrize("kind,dtype,use_xla,want", [
    ("avx512", "bf16", False, True),
    ("avx512", "fp16", False, True),
    ("avx512", "fp32", False, False),
    ("avx512", "bf16", True, False),
    ("avx2", "bf16", False, False),
    ("other", "bf16", False, False),
])
def test_unset_resolves_per_cpu_kind_and_dtype(monkeypatch, kind, dtype,
                                               use_xla, want):
  monkeypatch.setenv("BERT_CPU_KIND", kind)
  cfg = runner.RunConfig(None, mixed_precision=dtype, use_xla=use_xla)
  assert cfg.constant_kernels is None
  assert cfg.setting("constant_kernels") is want
  for forced in (True, False):
    cfg = runner.RunConfig(None, mixed_precision=dtype, use_xla=use_xla,
                           constant_kernels=forced)
    assert cfg.setting("constant_kernels") is forced
  assert runner.RunConfig(None, use_tpu=True, mixed_precision=dtype).setting(
      "constant_kernels") is False


def test_runner_predict_and_evaluate_with_constant_kernels(monkeypatch):
  """The runner switches to constant kernels after CONSTANT_KERNELS_AFTER_BATCHES
  batches (here 1 of 2), tracing that step once; the outputs agree."""
  feats = {
      "input_ids": np.random.RandomState(1).randint(1, 50, (6, 8)),
      "input_mask": np.array([[1] * 8] * 3 + [[1] * 4 + [0] * 4] * 3),
      "segment_ids": np.zeros((6, 8), np.int64),
      "label_ids": np.array([0, 1, 0, 1, 1, 0]),
      "is_real_example": np.ones(6, np.int64),
  }
  feats = {k: np.asarray(v, np.int32) for k, v in feats.items()}

  def input_fn(params):
    return tf.data.Dataset.from_tensor_slices(feats).batch(
        params["batch_size"])

  traced = []
  real = modeling.constant_kernels

  def spy(enabled=True):
    traced.append(enabled)
    return real(enabled)

  monkeypatch.setattr(modeling, "constant_kernels", spy)
  monkeypatch.setattr(runner, "CONSTANT_KERNELS_AFTER_BATCHES", 1)
  results = {}
  for forced in (False, True):
    cfg = runner.RunConfig(None, seed=3, mixed_precision="bf16",
                           constant_kernels=forced)
    tf.random.set_seed(9)
    config = modeling.BertConfig(**dict(CONFIG, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0))
    task = run_classifier.ClassifierTask(config, ["0", "1"],
                                         options=cfg.encoder_options)
    model = task.create_model()
    probabilities = np.stack([p["probabilities"] for p in runner.predict(
        cfg, task, input_fn, 4, model=model, dynamic_padding=True)])
    metrics = runner.evaluate(cfg, task, input_fn, 4, model=model)
    results[forced] = probabilities, metrics
    # Bucketed batches of lengths 8 and 4: one constant trace for both.
    assert traced.count(True) == (2 if forced else 0), traced
  np.testing.assert_allclose(results[True][0], results[False][0], atol=1e-2)
  for key in ("eval_loss", "eval_accuracy"):
    assert results[True][1][key] == pytest.approx(results[False][1][key],
                                                  abs=2e-2), key



def test_short_jobs_keep_the_variable_step(monkeypatch):
  """Fewer batches than CONSTANT_KERNELS_AFTER_BATCHES: no constant trace."""
  traced = []
  real = modeling.constant_kernels
  monkeypatch.setattr(modeling, "constant_kernels",
                      lambda enabled=True: traced.append(enabled) or
                      real(enabled))
  cfg = runner.RunConfig(None, seed=3, mixed_precision="bf16",
                         constant_kernels=True)
  task = run_classifier.ClassifierTask(modeling.BertConfig(**CONFIG),
                                       ["0", "1"], options=cfg.encoder_options)
  model = task.create_model()
  feats = {"input_ids": np.ones((3, 8), np.int32),
           "input_mask": np.ones((3, 8), np.int32),
           "segment_ids": np.zeros((3, 8), np.int32),
           "label_ids": np.zeros(3, np.int32),
           "is_real_example": np.ones(3, np.int32)}
  out = list(runner.predict(
      cfg, task, lambda p: tf.data.Dataset.from_tensor_slices(feats).batch(
          p["batch_size"]), 2, model=model))
  assert len(out) == 3 and traced and not any(traced)
