"""Tests for modeling.py against the original's outputs in ../shared/reference.

Tolerances (from reference/model/README.md, "Observed tolerances"): re-running
the original with other thread counts / oneDNN already moves MiniLM's encoder
outputs (values up to |x| ~ 10.5) by 1.2e-4, so a float32 port is accepted at
max |diff| <= 2e-4 on embeddings/encoder layers/sequence output and <= 1e-5 on
the pooled output; the tiny random model at <= 1e-5 everywhere.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, ROOT, require
import modeling

MODEL_REF = REFERENCE / "model"
FORWARD = MODEL_REF / "forward"

# Reference tolerances for a float32 port (see module docstring).
MINILM_ENCODER_ATOL = 2e-4
MINILM_POOLED_ATOL = 1e-5
TINY_ATOL = 1e-5

_CASES = {
    "minilm": (MODEL_REF / "minilm_ckpt" / "bert_config.json",
               MODEL_REF / "minilm_ckpt" / "bert_model.ckpt"),
    "tiny": (FORWARD / "tiny_random_ckpt" / "bert_config.json",
             FORWARD / "tiny_random_ckpt" / "bert_model.ckpt"),
}
_ATOL = {
    "minilm": (MINILM_ENCODER_ATOL, MINILM_POOLED_ATOL),
    "tiny": (TINY_ATOL, TINY_ATOL),
}

_weights_cache = {}


def _weights(case):
  """{name: np.ndarray} of a reference checkpoint (read once)."""
  if case not in _weights_cache:
    _, ckpt = _CASES[case]
    require(str(ckpt) + ".index")
    reader = tf.train.load_checkpoint(str(ckpt))
    _weights_cache[case] = {
        n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
  return _weights_cache[case]


def _config(case):
  return modeling.BertConfig.from_json_file(str(require(_CASES[case][0])))


def _loaded_model(case, **kwargs):
  model = modeling.BertModel(_config(case), **kwargs)
  weights = _weights(case)
  for name, var in model.named_variables().items():
    var.assign(weights[name])
  return model


def _inputs(case):
  data = np.load(require(FORWARD / ("%s_inputs.npz" % case)))
  return data["input_ids"], data["input_mask"], data["segment_ids"]


def _max_diffs(outputs, ref):
  layers = np.stack([x.numpy() for x in outputs.all_encoder_layers])
  return {
      "embedding_output": np.abs(outputs.embedding_output.numpy() -
                                 ref["embedding_output"]).max(),
      "all_encoder_layers": np.abs(layers - ref["all_encoder_layers"]).max(),
      "sequence_output": np.abs(outputs.sequence_output.numpy() -
                                ref["sequence_output"]).max(),
      "pooled_output": np.abs(outputs.pooled_output.numpy() -
                              ref["pooled_output"]).max(),
  }


def _check_parity(case, outputs, ref):
  enc_atol, pooled_atol = _ATOL[case]
  diffs = _max_diffs(outputs, ref)
  for key in ("embedding_output", "all_encoder_layers", "sequence_output"):
    assert diffs[key] <= enc_atol, (case, key, diffs)
  assert diffs["pooled_output"] <= pooled_atol, (case, diffs)
  return diffs


# ------------------------------------------------------------ forward parity
@pytest.mark.parametrize("case", ["minilm", "tiny"])
@pytest.mark.parametrize("one_hot", [False, True], ids=["gather", "one_hot"])
def test_forward_parity_constructor_form(case, one_hot):
  """The original constructor form + accessors reproduce the saved outputs."""
  ref_name = "%s_outputs%s.npz" % (case, "_onehot" if one_hot else "")
  ref = np.load(require(FORWARD / ref_name))
  input_ids, input_mask, segment_ids = _inputs(case)
  # Build, load, then run through the constructor form on a second model that
  # shares nothing but the weights (the original loads with
  # init_from_checkpoint before running).
  model = modeling.BertModel(
      _config(case), is_training=False,
      input_ids=tf.constant(input_ids), input_mask=tf.constant(input_mask),
      token_type_ids=tf.constant(segment_ids),
      use_one_hot_embeddings=one_hot)
  weights = _weights(case)
  for name, var in model.named_variables().items():
    var.assign(weights[name])
  outputs = model(input_ids, input_mask, segment_ids)
  assert model.get_sequence_output() is outputs.sequence_output
  accessor_outputs = modeling.BertOutputs(
      sequence_output=model.get_sequence_output(),
      pooled_output=model.get_pooled_output(),
      all_encoder_layers=model.get_all_encoder_layers(),
      embedding_output=model.get_embedding_output())
  _check_parity(case, accessor_outputs, ref)
  assert model.get_embedding_table() is model.named_variables()[
      "bert/embeddings/word_embeddings"]


def test_constructor_form_runs_immediately():
  cfg = _config("tiny")
  input_ids, input_mask, segment_ids = _inputs("tiny")
  model = modeling.BertModel(cfg, is_training=False, input_ids=input_ids,
                             input_mask=input_mask,
                             token_type_ids=segment_ids)
  assert model.get_pooled_output().shape == (4, cfg.hidden_size)
  assert model.get_sequence_output().shape == (4, 32, cfg.hidden_size)
  assert len(model.get_all_encoder_layers()) == cfg.num_hidden_layers
  assert model.get_embedding_output().dtype == tf.float32


def test_variable_names_and_order_match_original():
  model = modeling.BertModel(_config("minilm"))
  names = list(model.named_variables())
  listing = json.loads(
      require(MODEL_REF / "_check_minilm_ckpt.json").read_text())
  ckpt = dict(tf.train.list_variables(str(_CASES["minilm"][1])))
  assert sorted(names) == sorted(ckpt)
  assert len(names) == 103
  for name, var in model.named_variables().items():
    assert list(var.shape) == ckpt[name], name
    assert var.dtype == tf.float32
  # Original creation order: embeddings, then layer by layer, then pooler.
  assert names[:5] == [
      "bert/embeddings/word_embeddings",
      "bert/embeddings/token_type_embeddings",
      "bert/embeddings/position_embeddings",
      "bert/embeddings/LayerNorm/beta", "bert/embeddings/LayerNorm/gamma"]
  assert names[5:21] == [
      "bert/encoder/layer_0/" + s for s in (
          "attention/self/query/kernel", "attention/self/query/bias",
          "attention/self/key/kernel", "attention/self/key/bias",
          "attention/self/value/kernel", "attention/self/value/bias",
          "attention/output/dense/kernel", "attention/output/dense/bias",
          "attention/output/LayerNorm/beta",
          "attention/output/LayerNorm/gamma",
          "intermediate/dense/kernel", "intermediate/dense/bias",
          "output/dense/kernel", "output/dense/bias",
          "output/LayerNorm/beta", "output/LayerNorm/gamma")]
  assert names[-2:] == ["bert/pooler/dense/kernel", "bert/pooler/dense/bias"]
  assert listing  # the listing file exists and is non-empty
  # A custom scope replaces the "bert" prefix.
  scoped = modeling.BertModel(_config("tiny"), scope="student")
  assert all(n.startswith("student/") for n in scoped.named_variables())


def test_initializers_like_original():
  tf.random.set_seed(1)
  cfg = modeling.BertConfig(vocab_size=2000, hidden_size=64,
                            num_hidden_layers=1, num_attention_heads=4,
                            intermediate_size=128, type_vocab_size=2)
  model = modeling.BertModel(cfg)
  named = model.named_variables()
  table = named["bert/embeddings/word_embeddings"].numpy()
  # Truncated normal: nothing beyond 2 stddev, std ~ 0.88 * 0.02.
  assert np.abs(table).max() <= 0.04
  assert abs(table.std() - 0.0176) < 0.0008
  assert np.all(named["bert/embeddings/LayerNorm/gamma"].numpy() == 1.0)
  assert np.all(named["bert/embeddings/LayerNorm/beta"].numpy() == 0.0)
  assert np.all(
      named["bert/encoder/layer_0/attention/self/query/bias"].numpy() == 0.0)


# ------------------------------------------------------- precision and XLA
def test_bf16_compute_close_to_fp32():
  """bfloat16 matmuls (8-bit mantissa): a few per cent of the value range.

  Stated tolerance: on MiniLM (6 layers, values up to |x| ~ 10.5), max |diff|
  vs the float32 reference <= 0.5 on encoder outputs, mean |diff| <= 0.03,
  and max |diff| <= 0.02 on the tanh pooled output. Outputs stay float32.
  """
  ref = np.load(require(FORWARD / "minilm_outputs.npz"))
  model = _loaded_model("minilm", compute_dtype=tf.bfloat16)
  outputs = model(*_inputs("minilm"))
  assert outputs.sequence_output.dtype == tf.float32
  assert outputs.pooled_output.dtype == tf.float32
  for var in model.named_variables().values():
    assert var.dtype == tf.float32
  seq = outputs.sequence_output.numpy()
  assert np.abs(seq - ref["sequence_output"]).max() <= 0.5
  assert np.abs(seq - ref["sequence_output"]).mean() <= 0.03
  assert np.abs(outputs.pooled_output.numpy() -
                ref["pooled_output"]).max() <= 0.02
  # float16 runs too and stays finite.
  model16 = _loaded_model("tiny", compute_dtype=tf.float16)
  out16 = model16(*_inputs("tiny"))
  ref_tiny = np.load(require(FORWARD / "tiny_outputs.npz"))
  assert np.abs(out16.sequence_output.numpy() -
                ref_tiny["sequence_output"]).max() <= 0.02


def test_xla_matches_eager():
  """tf.function(jit_compile=True) == eager float32 within 1e-5."""
  model = _loaded_model("tiny")
  inputs = [tf.constant(x) for x in _inputs("tiny")]
  eager = model(*inputs)

  @tf.function(jit_compile=True)
  def run(ids, mask, segs):
    out = model(ids, mask, segs)
    return out.sequence_output, out.pooled_output

  seq, pooled = run(*inputs)
  assert np.abs(seq.numpy() - eager.sequence_output.numpy()).max() <= 1e-5
  assert np.abs(pooled.numpy() - eager.pooled_output.numpy()).max() <= 1e-5
  ref = np.load(require(FORWARD / "tiny_outputs.npz"))
  assert np.abs(seq.numpy() - ref["sequence_output"]).max() <= TINY_ATOL


def test_tf_function_dynamic_shapes():
  model = _loaded_model("tiny")
  ids, mask, segs = _inputs("tiny")

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
  def run(a, b, c):
    return model(a, b, c).sequence_output

  out = run(ids, mask, segs)
  ref = np.load(require(FORWARD / "tiny_outputs.npz"))
  assert np.abs(out.numpy() - ref["sequence_output"]).max() <= TINY_ATOL


def _grads(model, inputs, training=False):
  with tf.GradientTape() as tape:
    out = model(*inputs, training=training)
    loss = tf.reduce_sum(out.sequence_output ** 2) + tf.reduce_sum(
        out.pooled_output)
  variables = list(model.named_variables().values())
  return loss, tape.gradient(loss, variables)


def _assert_same_loss_and_grads(names, result_a, result_b):
  """Losses within 1e-5 relative, each gradient within 1e-5 of its scale."""
  (loss_a, grads_a), (loss_b, grads_b) = result_a, result_b
  assert abs(float(loss_a) - float(loss_b)) <= 1e-5 * abs(float(loss_a))
  for name, ga, gb in zip(names, grads_a, grads_b):
    ga = tf.convert_to_tensor(ga).numpy()
    gb = tf.convert_to_tensor(gb).numpy()
    assert np.abs(ga - gb).max() <= 1e-5 * max(1.0, np.abs(ga).max()), name


def test_recompute_same_gradients():
  inputs = [tf.constant(x) for x in _inputs("tiny")]
  plain = _loaded_model("tiny")
  recomputed = _loaded_model("tiny", recompute=True)
  _assert_same_loss_and_grads(plain.named_variables(), _grads(plain, inputs),
                              _grads(recomputed, inputs))


def _stateless_plain_model(monkeypatch, **kwargs):
  """A recompute=True model whose layers then run without tf.recompute_grad:
  the plain backward pass with recompute's stateless per-layer dropout masks."""
  monkeypatch.setattr(tf, "recompute_grad", lambda f: f)
  return _loaded_model("tiny", recompute=True, **kwargs)


def test_recompute_with_dropout_reuses_masks(monkeypatch):
  """With dropout, each recomputed layer must reuse its forward masks.

  Recompute draws per-layer seeds for stateless dropout; a plain model on the
  same stateless seeds must give the same gradients. (A recompute that drew
  fresh masks would differ by far more than 1e-5.)
  """
  inputs = [tf.constant(x) for x in _inputs("tiny")]
  recomputed = _loaded_model("tiny", recompute=True)
  results = []
  tf.random.set_seed(3)
  results.append(_grads(recomputed, inputs, training=True))
  plain = _stateless_plain_model(monkeypatch)
  tf.random.set_seed(3)
  results.append(_grads(plain, inputs, training=True))
  assert np.isfinite(float(results[0][0]))
  _assert_same_loss_and_grads(plain.named_variables(), *results)
  # And dropout is really active: a second draw gives another loss.
  tf.random.set_seed(4)
  assert abs(float(_grads(plain, inputs, training=True)[0]) -
             float(results[1][0])) > 1e-3


# ------------------------------------------------------------- fused blocks
@pytest.mark.parametrize("mode", [True, "epilogues"])
@pytest.mark.parametrize("case", ["minilm", "tiny"])
def test_fused_blocks_forward_parity(case, mode):
  """fused_blocks=True (and "epilogues", whose prediction calls run the XLA
  epilogues) meets the reference tolerances. On the tiny model it
  equals the default op-by-op path to float rounding (<= 2e-6 relative to the
  values); MiniLM's six layers amplify rounding (fused vs default 7.8e-5 at
  values up to 10.5, as re-running the original with other threads moves it
  by 1.2e-4), so there only the reference tolerance is stated."""
  ref = np.load(require(FORWARD / ("%s_outputs.npz" % case)))
  inputs = _inputs(case)
  fused = _loaded_model(case, fused_blocks=mode)(*inputs)
  _check_parity(case, fused, ref)
  if case == "tiny":
    plain = _loaded_model(case)(*inputs)
    for a, b in zip(plain.all_encoder_layers, fused.all_encoder_layers):
      scale = max(1.0, np.abs(a.numpy()).max())
      assert np.abs(a.numpy() - b.numpy()).max() <= 2e-6 * scale


def test_fused_blocks_same_gradients_with_dropout(monkeypatch):
  """Training with dropout: the hand-written backward passes of the fused
  attention core and GELU give the gradients of the op-by-op path.

  Both models draw their dropout masks from the same stateless seeds, so the
  masks are equal; with recompute on top, the recomputed fused layer reuses
  them too.
  """
  inputs = [tf.constant(x) for x in _inputs("tiny")]
  model = _loaded_model("tiny", fused_blocks=True, recompute=True)
  tf.random.set_seed(5)
  fused_recompute = _grads(model, inputs, training=True)
  plain = _stateless_plain_model(monkeypatch)
  fused = _stateless_plain_model(monkeypatch, fused_blocks=True)
  results = []
  for model in (plain, fused):
    tf.random.set_seed(5)
    results.append(_grads(model, inputs, training=True))
  results.append(fused_recompute)
  for other in results[1:]:
    _assert_same_loss_and_grads(plain.named_variables(), results[0], other)
  # Dropout is really active in the fused path.
  tf.random.set_seed(6)
  assert abs(float(_grads(fused, inputs, training=True)[0]) -
             float(results[1][0])) > 1e-3


@pytest.mark.parametrize("training_form", ["fused_attention",
                                           "attention_for_training"])
def test_fused_attention_against_numpy(training_form):
  """The fused attention core and its gradient, against float64 numpy: the
  all-XLA form (fused_blocks=True) and the one with TF's batched matmuls
  (fused_blocks="epilogues" in training)."""
  rng = np.random.RandomState(7)
  batch, seq, heads, size = 2, 5, 3, 4
  width = heads * size
  qkv = rng.randn(batch * seq, 3 * width).astype(np.float32)
  mask = np.ones([batch, seq], np.float32)
  mask[1, 3:] = 0
  adder = ((1.0 - mask) * -10000.0).reshape(batch, 1, 1, seq)
  keep = rng.rand(batch, heads, seq, seq) >= 0.25
  dcontext = rng.randn(batch * seq, width)

  def numpy_attention(x, keep=keep, rate=0.25):
    parts = x.reshape(batch, seq, 3, heads, size).transpose(2, 0, 3, 1, 4)
    q, k, v = parts
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(size) + adder
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    probs = np.where(keep, probs / (1.0 - rate), 0.0)
    return (probs @ v).transpose(0, 2, 1, 3).reshape(batch * seq, width)

  x = tf.constant(qkv)
  with tf.GradientTape() as tape:
    tape.watch(x)
    if training_form == "fused_attention":
      context = modeling.fused_attention(
          x, tf.constant(adder.astype(np.float32)), heads, size, 0.25,
          tf.constant(keep), training=True)
    else:
      context = modeling.attention_for_training(
          x, tf.constant(adder.astype(np.float32)), heads, size, seq, 0.25,
          tf.constant(keep))
    loss = tf.reduce_sum(context * tf.constant(dcontext.astype(np.float32)))
  grad = tape.gradient(loss, x).numpy()
  want = numpy_attention(qkv.astype(np.float64))
  assert np.abs(context.numpy() - want).max() <= 1e-5
  # Central differences of the float64 loss, all 90 columns of two rows.
  eps = 1e-5
  for row in (2, 8):
    for col in range(3 * width):
      bumped = qkv.astype(np.float64)
      bumped[row, col] += eps
      up = (numpy_attention(bumped) * dcontext).sum()
      bumped[row, col] -= 2 * eps
      down = (numpy_attention(bumped) * dcontext).sum()
      assert abs(grad[row, col] - (up - down) / (2 * eps)) <= 1e-4, (row, col)
  # Inference form: no dropout, no gradient bookkeeping.
  plain = modeling.fused_attention(x, tf.constant(adder.astype(np.float32)),
                                   heads, size)
  want = numpy_attention(qkv.astype(np.float64), keep=True, rate=0.0)
  assert np.abs(plain.numpy() - want).max() <= 1e-5


def test_fused_gelu_matches_gelu_and_its_gradient():
  x = tf.constant(np.linspace(-8, 8, 4001, dtype=np.float32))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    fused = modeling.fused_gelu(x)
    plain = modeling.gelu(x)
  # Against the formula and its derivative in float64 (the default path's
  # own errors are 6.7e-7 and 4.1e-6 here).
  v = x.numpy().astype(np.float64)
  c = np.sqrt(2.0 / np.pi)
  t = np.tanh(c * (v + 0.044715 * v ** 3))
  slope = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
  assert np.abs(fused.numpy() - 0.5 * v * (1 + t)).max() <= 1e-6
  assert np.abs(tape.gradient(fused, x).numpy() - slope).max() <= 5e-6
  assert np.abs(fused.numpy() - plain.numpy()).max() <= 2e-6
  bf16 = modeling.fused_gelu(tf.cast(x, tf.bfloat16))
  assert bf16.dtype == tf.bfloat16
  assert np.abs(tf.cast(bf16, tf.float32).numpy() - plain.numpy()).max() <= 0.05


@pytest.mark.parametrize("mode", [True, "epilogues"])
def test_fused_blocks_bf16_and_dynamic_shapes(mode):
  """bf16 compute through the fused kernels stays within the bf16 tolerance
  of the float32 reference; unknown batch and length compile per shape."""
  ref = np.load(require(FORWARD / "minilm_outputs.npz"))
  model = _loaded_model("minilm", compute_dtype=tf.bfloat16, fused_blocks=mode)
  seq = model(*_inputs("minilm")).sequence_output.numpy()
  assert np.abs(seq - ref["sequence_output"]).max() <= 0.5
  assert np.abs(seq - ref["sequence_output"]).mean() <= 0.03

  tiny = _loaded_model("tiny", fused_blocks=mode)
  ids, mask, segs = _inputs("tiny")

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
  def run(a, b, c):
    return tiny(a, b, c).sequence_output

  ref_tiny = np.load(require(FORWARD / "tiny_outputs.npz"))
  assert np.abs(run(ids, mask, segs).numpy() -
                ref_tiny["sequence_output"]).max() <= TINY_ATOL
  short = run(ids[:3, :20], mask[:3, :20], segs[:3, :20]).numpy()
  want = _loaded_model("tiny")(ids[:3, :20], mask[:3, :20], segs[:3, :20])
  assert np.abs(short - want.sequence_output.numpy()).max() <= 1e-5


def test_dropout_only_when_training():
  model = _loaded_model("tiny")
  inputs = _inputs("tiny")
  a = model(*inputs, training=False).sequence_output.numpy()
  b = model(*inputs, training=False).sequence_output.numpy()
  c = model(*inputs, training=True).sequence_output.numpy()
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 1e-3


# ---------------------------------------------------------------- bad input
def test_hidden_size_not_divisible_by_heads():
  cfg = modeling.BertConfig(vocab_size=100, hidden_size=30,
                            num_attention_heads=4, intermediate_size=37)
  with pytest.raises(ValueError, match=r"hidden size \(30\).*attention "
                     r"heads \(4\)"):
    modeling.BertModel(cfg)
  with pytest.raises(ValueError, match="30"):
    cfg.validate()


def test_config_validate_rejects_bad_values():
  for key, value in [("vocab_size", None), ("num_hidden_layers", 0),
                     ("hidden_act", "swishy"), ("hidden_dropout_prob", 1.5)]:
    cfg = modeling.BertConfig(vocab_size=100, hidden_size=32,
                              num_attention_heads=4)
    setattr(cfg, key, value)
    with pytest.raises(ValueError):
      cfg.validate()


def test_token_type_out_of_range_is_silent_zero_vector():
  """Original behaviour: id >= type_vocab_size -> zero token-type embedding."""
  model = _loaded_model("tiny")
  input_ids, input_mask, _ = _inputs("tiny")
  out_of_range = np.full_like(input_ids, 2)  # type_vocab_size is 2
  got = model(input_ids, input_mask, out_of_range).embedding_output.numpy()
  table = model.named_variables()["bert/embeddings/token_type_embeddings"]
  table.assign(tf.zeros_like(table))
  want = model(input_ids, input_mask,
               np.zeros_like(input_ids)).embedding_output.numpy()
  np.testing.assert_array_equal(got, want)


def test_sequence_longer_than_positions():
  cfg = _config("tiny")  # max_position_embeddings 64
  model = modeling.BertModel(cfg)
  with pytest.raises(ValueError, match=r"sequence length \(65\).*"
                     r"max_position_embeddings \(64\)"):
    model(tf.zeros([1, 65], tf.int32))


def test_input_rank_checked():
  model = modeling.BertModel(_config("tiny"))
  with pytest.raises(ValueError, match="actual rank `1`"):
    model(tf.zeros([5], tf.int32))
  with pytest.raises(ValueError, match="input_mask"):
    model(tf.zeros([2, 5], tf.int32), input_mask=tf.ones([2, 4], tf.int32))


def test_accessors_before_forward_explain():
  model = modeling.BertModel(_config("tiny"))
  with pytest.raises(ValueError, match="call the model"):
    model.get_pooled_output()


def test_vocab_larger_than_vocab_size(tmp_path):
  cfg = modeling.BertConfig(vocab_size=5)
  vocab = tmp_path / "vocab.txt"
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nextra\n")
  with pytest.raises(ValueError, match=r"vocab.txt has 6 entries but "
                     r"bert_config vocab_size is 5"):
    modeling.check_vocab_size(str(vocab), cfg)
  vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]")  # no final newline
  assert modeling.check_vocab_size(str(vocab), cfg) == 5
  with pytest.raises(ValueError, match="7 entries"):
    modeling.check_vocab_size(7, cfg)
  with pytest.raises(ValueError, match="6 entries"):
    modeling.check_vocab_size({"a": 0, "b": 5}, cfg)
  minilm = _config("minilm")
  assert modeling.check_vocab_size(
      str(require(MODEL_REF / "minilm_ckpt" / "vocab.txt")), minilm) == 30522


# ------------------------------------------------------------------ config
def test_config_round_trip_keeps_unknown_keys(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps({"vocab_size": 21128, "hidden_size": 768,
                              "num_hidden_layers": 12,
                              "num_attention_heads": 12,
                              "intermediate_size": 3072,
                              "pooler_type": "first_token_transform",
                              "directionality": "bidi"}))
  cfg = modeling.BertConfig.from_json_file(str(path))
  assert cfg.pooler_type == "first_token_transform"
  assert cfg.type_vocab_size == 16  # missing key keeps the code default
  text = cfg.to_json_string()
  assert text.endswith("}\n")
  assert text == json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n"
  assert list(json.loads(text)) == sorted(json.loads(text))
  # The released-format config written by the original reads back verbatim.
  original = (MODEL_REF / "minilm_ckpt" / "bert_config.json")
  text = require(original).read_text()
  assert modeling.BertConfig.from_json_file(str(original)).to_json_string() \
      == text


# ----------------------------------------------------------------- helpers
def test_helpers_match_original_semantics():
  x = tf.constant(np.linspace(-6, 6, 1001, dtype=np.float32))
  want = 0.5 * x * (1.0 + tf.tanh(
      np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3))))
  assert np.abs(modeling.gelu(x).numpy() - want.numpy()).max() <= 1e-6
  assert modeling.get_activation("GELU") is modeling.gelu
  assert modeling.get_activation("linear") is None
  assert modeling.get_activation("") is None
  assert modeling.get_activation(tf.nn.relu) is tf.nn.relu
  with pytest.raises(ValueError, match="Unsupported activation"):
    modeling.get_activation("swish")
  mask = modeling.create_attention_mask_from_input_mask(
      tf.zeros([2, 3]), tf.constant([[1, 1, 0, 0], [1, 0, 0, 0]]))
  assert mask.shape == (2, 3, 4)
  np.testing.assert_array_equal(mask.numpy()[0, 2], [1, 1, 0, 0])
  assert modeling.reshape_to_matrix(tf.zeros([2, 3, 4])).shape == (6, 4)
  assert modeling.reshape_from_matrix(tf.zeros([6, 5]),
                                      [2, 3, 4]).shape == (2, 3, 5)
  with pytest.raises(ValueError):
    modeling.reshape_to_matrix(tf.zeros([3]))
  assert modeling.get_shape_list(tf.zeros([2, 3])) == [2, 3]
  assert modeling.dropout(x, 0.0) is x
  y = np.random.RandomState(0).randn(3, 8).astype(np.float32)
  ln = modeling.layer_norm(y).numpy()
  want = (y - y.mean(-1, keepdims=True)) / np.sqrt(y.var(-1, keepdims=True) +
                                                   1e-12)
  assert np.abs(ln - want).max() <= 1e-5


def test_dense_and_layer_norm_blocks():
  dense = modeling.Dense("cls/predictions/transform/dense", 4, 3,
                         activation="gelu", initializer_range=0.02)
  assert list(dense.named_variables()) == [
      "cls/predictions/transform/dense/kernel",
      "cls/predictions/transform/dense/bias"]
  x = np.random.RandomState(0).randn(2, 5, 4).astype(np.float32)
  want = modeling.gelu(x @ dense.kernel.numpy()).numpy()
  assert np.abs(dense(tf.constant(x)).numpy() - want).max() <= 1e-6
  norm = modeling.LayerNorm("cls/predictions/transform/LayerNorm", 3)
  assert list(norm.named_variables()) == [
      "cls/predictions/transform/LayerNorm/beta",
      "cls/predictions/transform/LayerNorm/gamma"]
  var = modeling.create_variable("output_weights", [2, 8],
                                 modeling.create_initializer(0.02))
  assert var.shape == (2, 8) and np.abs(var.numpy()).max() <= 0.04


def test_get_assignment_map_from_checkpoint():
  ckpt = str(_CASES["tiny"][1])
  require(ckpt + ".index")
  model = modeling.BertModel(_config("tiny"))
  head = modeling.create_variable("output_weights", [2, 64])
  tvars = model.named_variables()
  tvars["output_weights"] = head
  assignment_map, initialized = modeling.get_assignment_map_from_checkpoint(
      tvars, ckpt)
  listing = [n for n, _ in tf.train.list_variables(ckpt)]
  assert list(assignment_map) == listing  # checkpoint listing order
  assert all(k == v for k, v in assignment_map.items())
  assert "output_weights" not in assignment_map
  assert len(initialized) == 2 * len(listing)
  assert initialized["bert/pooler/dense/bias:0"] == 1
  # A list of variables named "<name>:0" works like the original's tvars.

  class _Var(object):

    def __init__(self, name):
      self.name = name

  amap, _ = modeling.get_assignment_map_from_checkpoint(
      [_Var("bert/pooler/dense/bias:0"), _Var("nothing:0")],
      ckpt + ".index")
  assert list(amap) == ["bert/pooler/dense/bias"]


# ------------------------------------------------------------------ imports
def test_importing_modules_prints_nothing_and_parses_no_flags():
  modules = sorted(p.stem for p in ROOT.glob("*.py"))
  assert "modeling" in modules and "checkpoints" in modules
  # Each module is imported in the same process (as tests do). A module whose
  # own project dependency is not written yet is reported, not failed.
  code = ("import sys\n"
          "from absl import flags\n"
          "skipped = []\n"
          "for m in %r:\n"
          "  try:\n"
          "    __import__(m)\n"
          "  except ModuleNotFoundError as e:\n"
          "    if e.name in %r:\n"
          "      raise\n"
          "    skipped.append(m)\n"
          "assert not flags.FLAGS.is_parsed(), 'flags were parsed'\n"
          "sys.stderr.write('SKIPPED %%s\\n' %% skipped if skipped else '')\n"
          % (modules, ["modeling", "checkpoints"]))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), env=env,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr

  def _noise(line):
    if line.startswith("SKIPPED "):
      return True
    # TF's C++ start-up banner (absl::InitializeLog, cudart) is not ours.
    return ("absl::InitializeLog" in line or "cudart_stub" in line or
            "cuda" in line.lower() or "oneDNN" in line or
            "cpu_feature_guard" in line or "rebuild TensorFlow" in line or
            not line.strip())

  assert proc.stdout == "", proc.stdout
  noise_free = [l for l in proc.stderr.splitlines() if not _noise(l)]
  assert noise_free == [], proc.stderr


def test_fused_norm_for_training_against_autodiff():
  """The training epilogue (dropout, bias, residual, LayerNorm; hand-written
  backward) against TF's autodiff of the op-by-op expression, float32, with a
  given keep mask; its bf16 `low` copy carries the padding columns and its
  gradient flows back too."""
  rng = np.random.RandomState(11)
  rows, width, rate = 6, 8, 0.25
  y = tf.constant(rng.randn(rows, width).astype(np.float32))
  bias = tf.constant(rng.randn(width).astype(np.float32))
  residual = tf.constant(rng.randn(rows, width).astype(np.float32))
  gamma = tf.constant(rng.randn(width).astype(np.float32))
  beta = tf.constant(rng.randn(width).astype(np.float32))
  keep = tf.constant(rng.rand(rows, width) >= rate)
  weights = tf.constant(rng.randn(rows, width).astype(np.float32))
  low_weights = tf.constant(rng.randn(rows, width + 4).astype(np.float32))

  def loss_of(out, low):
    return (tf.reduce_sum(out * weights) +
            tf.reduce_sum(tf.cast(low, tf.float32) * low_weights))

  with tf.GradientTape(persistent=True) as tape:
    tape.watch([y, bias, residual, gamma, beta])
    out, low = modeling.fused_norm_for_training(
        y, bias, residual, gamma, beta, keep, rate, 4)
    fused_loss = loss_of(out, low)
    dropped = tf.where(keep, (y + bias) / (1.0 - rate), 0.0)
    want = modeling.layer_norm(dropped + residual, beta=beta, gamma=gamma)
    pad = tf.concat([tf.ones([rows, 1]), tf.zeros([rows, 3])], axis=1)
    plain_loss = loss_of(want, tf.concat([want, pad], axis=1))
  np.testing.assert_allclose(out.numpy(), want.numpy(), atol=2e-6)
  np.testing.assert_array_equal(low.numpy()[:, width:], pad.numpy())
  sources = [y, bias, residual, gamma, beta]
  for got, expected in zip(tape.gradient(fused_loss, sources),
                           tape.gradient(plain_loss, sources)):
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=2e-5)


def test_epilogues_training_gradients():
  """A training step of an "epilogues" model (fused blocks + the training
  epilogues; below float32 the Q/K/V and FFN biases folded into their
  matmuls) against the op-by-op float32 model, dropout off: float32 loss and
  gradients within 5e-5 of each gradient's scale (the loss sums the squared
  outputs, 8,192: the LayerNorm backward's rounding shows at ~2e-5), bf16
  within 1e-2 (op-by-op bf16 itself is 1.6e-2 off here)."""
  config = _config("tiny")
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
  inputs = [tf.constant(x) for x in _inputs("tiny")]
  results = {}
  for dtype, mode in ((tf.float32, False), (tf.float32, "epilogues"),
                      (tf.bfloat16, "epilogues")):
    model = modeling.BertModel(config, compute_dtype=dtype, fused_blocks=mode)
    weights = _weights("tiny")
    for name, var in model.named_variables().items():
      var.assign(weights[name])
    results[dtype] = results.get(dtype, []) + [
        _grads(model, inputs, training=True)]
  loss_want, grads_want = results[tf.float32][0]
  for (loss, grads), tol in ((results[tf.float32][1], 5e-5),
                             (results[tf.bfloat16][0], 1e-2)):
    assert abs(float(loss) - float(loss_want)) <= tol * abs(float(loss_want))
    for name, want, got in zip(model.named_variables(), grads_want, grads):
      want = tf.convert_to_tensor(want).numpy()
      got = tf.convert_to_tensor(got).numpy()
      assert np.abs(want - got).max() <= tol * max(1.0, np.abs(want).max()), (
          name, tol)


def test_fused_dropout_masks_keep_the_rate():
  """The fused kernels' masks (XLA threefry) keep 1 - rate of the values,
  independently per draw: a fresh seed each call."""
  shape = tf.constant([64, 4, 32, 32])
  keep = modeling._draw_keep_mask(shape, tf.constant([3, 4]), 0.1).numpy()
  assert keep.shape == (64, 4, 32, 32) and keep.dtype == bool
  assert abs(keep.mean() - 0.9) < 0.005
  again = modeling._draw_keep_mask(shape, tf.constant([3, 4]), 0.1).numpy()
  np.testing.assert_array_equal(keep, again)
  other = modeling._draw_keep_mask(shape, tf.constant([3, 5]), 0.1).numpy()
  assert abs((keep == other).mean() - (0.9 ** 2 + 0.1 ** 2)) < 0.005
  call = modeling._LayerCall(None, 32, tf.float32, 0.1, 0.1, None, None)
  first = call._keep_mask([256, 64], 0.25, 1).numpy()
  second = call._keep_mask([256, 64], 0.25, 1).numpy()
  assert abs(first.mean() - 0.75) < 0.02 and (first != second).any()
