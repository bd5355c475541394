"""The fast paths (XLA, bf16 compute, dynamic padding) against the fp32 reference.

Tolerances (tiny model: hidden 32, 2 layers, fixed seeds):
  * XLA, float32: within 2e-5 absolute of the default path (XLA may fuse
    multiply-adds and reorder reductions; it computes the same float32 math);
    after 3 training steps the weights agree within 1e-5 (1e-5 relative for
    the XLA-compiled optimizer update alone).
  * bf16 compute (float32 variables): matmul inputs rounded to bfloat16 (8
    mantissa bits, relative rounding 2^-9 per operand), float32 accumulation,
    LayerNorm/softmax/losses in float32: hidden states within 5e-2 absolute of
    float32 (they are LayerNorm outputs of size ~1), probabilities within 2e-2,
    losses within 2 %; variables, slots and checkpoints stay float32.
  * dynamic padding: the same per-example outputs as the fixed-length path
    within 1e-5, in input order.
  * defaults: the default predict and training step are bitwise the plain
    float32 computations (eager forward; the runner's step is checked against
    the original's 20-step run in test_pretraining_parity.py).
"""
import collections

import numpy as np
import pytest
import tensorflow as tf

import modeling
import optimization
import run_classifier
import runner

SEQ = 16
BATCH = 4


def _config(dropout=0.0):
  return modeling.BertConfig(
      vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, hidden_dropout_prob=dropout,
      attention_probs_dropout_prob=dropout, max_position_embeddings=64,
      type_vocab_size=2)


def _features(n=BATCH, seq=SEQ, seed=0, lengths=None):
  rng = np.random.RandomState(seed)
  ids = rng.randint(1, 99, size=[n, seq]).astype(np.int32)
  if lengths is None:
    lengths = rng.randint(3, seq + 1, size=[n])
  mask = (np.arange(seq)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
  ids *= mask
  seg = np.zeros([n, seq], np.int32)
  seg[:, seq // 2:] = 1
  seg *= mask
  return collections.OrderedDict(
      input_ids=ids, input_mask=mask, segment_ids=seg,
      label_ids=rng.randint(0, 2, size=[n]).astype(np.int32),
      is_real_example=np.ones([n], np.int32))


def _input_fn(feats, repeat=False):
  def input_fn(params):
    ds = tf.data.Dataset.from_tensor_slices(
        {k: tf.constant(v) for k, v in feats.items()})
    ds = ds.batch(params["batch_size"])
    return ds.repeat() if repeat else ds
  return input_fn


def _cfg(**kwargs):
  return runner.RunConfig(None, seed=7, **kwargs)


class _DeterministicTask(run_classifier.ClassifierTask):
  """The classifier without its head's fixed 0.1 dropout (no randomness, so
  paths with different random-number generators can be compared)."""

  def compute_loss(self, model, features, training):
    return super().compute_loss(model, features, False)


def _task(cfg, dropout=0.0, keep_fused=False):
  cls = _DeterministicTask if not dropout else run_classifier.ClassifierTask
  options = cfg.encoder_options
  if not keep_fused:
    options = options._replace(fused_blocks=False)
  return cls(_config(dropout), ["0", "1"], options=options)


def _model(cfg):
  tf.random.set_seed(11)
  task = _task(cfg)
  return task, task.create_model()


def _copy_weights(src, dst):
  for (name, a), (_, b) in zip(src.named_variables().items(),
                               dst.named_variables().items()):
    b.assign(a)


def _predict(cfg, task, model, feats, **kwargs):
  out = list(runner.predict(cfg, task, _input_fn(feats), BATCH, model=model,
                            **kwargs))
  return np.stack([o["probabilities"] for o in out])


# ------------------------------------------------------------------ inference


def test_default_predict_is_the_plain_fp32_forward():
  cfg = _cfg()
  task, model = _model(cfg)
  feats = _features(8)
  got = _predict(cfg, task, model, feats)
  want = []
  for s in range(0, 8, BATCH):
    batch = {k: tf.constant(v[s:s + BATCH]) for k, v in feats.items()}
    want.append(task.predict(model, batch)["probabilities"].numpy())
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, np.concatenate(want))


def test_xla_predict_and_evaluate_match_fp32():
  base_cfg, xla_cfg = _cfg(), _cfg(use_xla=True)
  task, model = _model(base_cfg)
  feats = _features(8)
  ref = _predict(base_cfg, task, model, feats)
  got = _predict(xla_cfg, task, model, feats)
  np.testing.assert_allclose(got, ref, atol=2e-5)
  ev_ref = runner.evaluate(base_cfg, task, _input_fn(feats), BATCH, model=model)
  ev_xla = runner.evaluate(xla_cfg, task, _input_fn(feats), BATCH, model=model)
  for key in ("eval_loss", "eval_accuracy", "loss"):
    assert ev_xla[key] == pytest.approx(ev_ref[key], abs=2e-5), key


def test_bf16_forward_close_to_fp32_with_fp32_variables_and_outputs():
  tf.random.set_seed(5)
  ref = modeling.BertModel(_config())
  fast = modeling.BertModel(_config(), compute_dtype=tf.bfloat16)
  _copy_weights(ref, fast)
  for v in fast.named_variables().values():
    assert v.dtype == tf.float32
  feats = _features()
  args = (feats["input_ids"], feats["input_mask"], feats["segment_ids"])
  want = ref(*args)
  got = fast(*args)
  for name in ("sequence_output", "pooled_output"):
    g, w = getattr(got, name), getattr(want, name)
    assert g.dtype == tf.float32, name
    np.testing.assert_allclose(g.numpy(), w.numpy(), atol=5e-2, err_msg=name)
  # bf16 really is used: the outputs are not bitwise the fp32 ones.
  assert not np.array_equal(got.sequence_output.numpy(),
                            want.sequence_output.numpy())


@pytest.mark.parametrize("use_xla", [False, True])
def test_bf16_predict_close_to_fp32(use_xla):
  base_cfg = _cfg()
  fast_cfg = _cfg(mixed_precision="bf16", use_xla=use_xla)
  task, model = _model(base_cfg)
  fast_task = _task(fast_cfg)
  fast_model = fast_task.create_model()
  _copy_weights(model, fast_model)
  feats = _features(8)
  ref = _predict(base_cfg, task, model, feats)
  got = _predict(fast_cfg, fast_task, fast_model, feats)
  np.testing.assert_allclose(got, ref, atol=2e-2)


def test_dynamic_padding_predict_same_outputs_in_input_order():
  cfg = _cfg()
  task, model = _model(cfg)
  lengths = [16, 3, 9, 4, 12, 5, 2, 16, 7, 8, 3]
  feats = _features(len(lengths), lengths=lengths)
  ref = _predict(cfg, task, model, feats)
  got = _predict(cfg, task, model, feats, dynamic_padding=True, bucket_window=8)
  assert got.shape == ref.shape
  np.testing.assert_allclose(got, ref, atol=1e-5)
  # And through XLA (one compilation per bucket length).
  xla_cfg = _cfg(use_xla=True)
  got = _predict(xla_cfg, task, model, feats, dynamic_padding=True)
  np.testing.assert_allclose(got, ref, atol=2e-5)


def test_bucket_length():
  assert [runner.bucket_length(n, 512) for n in (1, 8, 9, 64, 65, 128, 129,
                                                 256, 257, 500)] == [
                                                     8, 8, 16, 64, 80, 128,
                                                     160, 256, 320, 512]
  assert runner.bucket_length(100, 96) == 96


# ------------------------------------------------------------------- training


def _trainer(cfg, steps=3, dropout=0.0, feats=None, num_train_steps=100,
             keep_fused=False):
  tf.random.set_seed(11)
  task = _task(cfg, dropout, keep_fused)
  trainer = runner.build_trainer(cfg, task, learning_rate=1e-3,
                                 num_train_steps=num_train_steps,
                                 num_warmup_steps=2,
                                 train_batch_size=BATCH)
  iterator = trainer.make_iterator(_input_fn(feats or _features(8), True))
  logs = [trainer.run_steps(iterator, 1) for _ in range(steps)]
  return trainer, logs


def _weights(trainer):
  state = collections.OrderedDict(trainer.state.named_weights)
  state.update(trainer.state.optimizer.named_slots())
  return {k: v.numpy() for k, v in state.items()}


def test_build_trainer_is_what_train_runs_bitwise(tmp_path):
  """build_trainer + run_steps == runner.train (default fp32 path), bitwise."""
  trainer, logs = _trainer(_cfg(), steps=3, num_train_steps=3)
  tf.random.set_seed(11)
  cfg = runner.RunConfig(str(tmp_path), seed=7, iterations_per_loop=1,
                         save_checkpoints_steps=3, log_steps=1)
  runner.train(cfg, _task(cfg), _input_fn(_features(8), True), 3, 2, 1e-3,
               train_batch_size=BATCH)
  reader = tf.train.load_checkpoint(str(tmp_path / "model.ckpt-3"))
  got = _weights(trainer)
  assert int(trainer.state.global_step.numpy()) == 3
  for name, value in got.items():
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, reader.get_tensor(name), err_msg=name)


def test_xla_optimizer_update_alone_matches_default():
  ref, ref_logs = _trainer(_cfg())
  fast, fast_logs = _trainer(_cfg(xla_optimizer_update=True))
  # The forward/backward is the default graph: step 1's loss is bitwise equal.
  assert float(fast_logs[0]["loss"]) == float(ref_logs[0]["loss"])
  want, got = _weights(ref), _weights(fast)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7,
                               err_msg=name)


def _assert_follows_default(fast, fast_logs):
  """Three steps of `fast` follow the default path's losses and weights."""
  ref, ref_logs = _trainer(_cfg())
  for a, b in zip(ref_logs, fast_logs):
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), abs=1e-5)
  want, got = _weights(ref), _weights(fast)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=1e-4,
                               err_msg=name)
  assert int(fast.state.global_step.numpy()) == 3


def test_xla_training_step_matches_default():
  _assert_follows_default(*_trainer(_cfg(use_xla=True)))


@pytest.mark.parametrize("use_xla", [False, True])
def test_bf16_training_keeps_fp32_state_and_follows_fp32(use_xla):
  ref, ref_logs = _trainer(_cfg())
  fast, fast_logs = _trainer(_cfg(mixed_precision="bf16", use_xla=use_xla))
  for a, b in zip(ref_logs, fast_logs):
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=2e-2)
  want, got = _weights(ref), _weights(fast)
  for name in want:
    assert got[name].dtype == np.float32, name
    # Three Adam steps of lr <= 1e-3 move each weight by at most ~1e-3;
    # bf16 changes the direction a little, never the size.
    np.testing.assert_allclose(got[name], want[name], atol=3e-3, err_msg=name)


def test_xla_training_with_dropout_and_recompute_runs():
  trainer, logs = _trainer(_cfg(use_xla=True, recompute=True), steps=2,
                           dropout=0.1)
  assert all(np.isfinite(float(l["loss"])) for l in logs)
  assert int(trainer.state.global_step.numpy()) == 2


@pytest.mark.parametrize("use_xla", [False, True])
def test_epilogues_training_follows_the_op_by_op_path(use_xla):
  """Three steps with fused_blocks="epilogues" (fused blocks + the XLA
  epilogues' hand-written backward; nested in the XLA-compiled step with
  --use_xla) follow the op-by-op trajectory; with dropout they run."""
  cfg = _cfg(use_xla=use_xla, fused_blocks="epilogues")
  fast, fast_logs = _trainer(cfg, keep_fused=True)
  assert fast.task.options.fused_blocks == "epilogues"
  _assert_follows_default(fast, fast_logs)
  _, logs = _trainer(cfg, steps=2, dropout=0.1, keep_fused=True)
  assert all(np.isfinite(float(l["loss"])) for l in logs)
