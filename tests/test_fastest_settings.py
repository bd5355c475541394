# coding=utf-8
"""Settings left unset default to what measured faster on this kind of CPU.

`--fused_blocks` and `--xla_optimizer_update` are the same math up to float
rounding; unset (None) they resolve through `runner.fastest_settings` from the
CPU kind (`runner.cpu_kind`, overridable with BERT_CPU_KIND) and the workload.
"""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from conftest import assert_bert_outputs_close
import modeling
import runner


def _flags_line():
  with open("/proc/cpuinfo") as f:
    for line in f:
      if line.startswith("flags"):
        return line.split(":", 1)[1].split()
  return None


def test_cpu_kind_reads_the_cpu_features(monkeypatch):
  monkeypatch.delenv("BERT_CPU_KIND", raising=False)
  cpu_flags = _flags_line()
  if cpu_flags is None:
    assert runner.cpu_kind() == "other"
  elif "avx512f" in cpu_flags:
    assert runner.cpu_kind() == "avx512"
  elif "avx2" in cpu_flags:
    assert runner.cpu_kind() == "avx2"
  else:
    assert runner.cpu_kind() == "other"
  monkeypatch.setenv("BERT_CPU_KIND", "avx2")
  assert runner.cpu_kind() == "avx2"


@pytest.mark.parametrize("kind,fused,xla_update", [
    ("avx2", True, True),
    ("avx512", "epilogues", True),
    ("other", False, False),
])
def test_unset_settings_resolve_per_cpu_kind(monkeypatch, kind, fused,
                                             xla_update):
  monkeypatch.setenv("BERT_CPU_KIND", kind)
  cfg = runner.RunConfig(None)
  assert cfg.fused_blocks is None and cfg.xla_optimizer_update is None
  assert cfg.setting("fused_blocks") == fused
  assert cfg.setting("xla_optimizer_update") is xla_update
  assert cfg.encoder_options.fused_blocks == fused
  # TPUs run the op-by-op path whatever the host CPU.
  tpu = runner.RunConfig(None, use_tpu=True)
  assert tpu.setting("fused_blocks") is False
  # A value given wins over the table.
  for forced in (True, False):
    cfg = runner.RunConfig(None, fused_blocks=forced,
                           xla_optimizer_update=forced)
    assert cfg.setting("fused_blocks") is forced
    assert cfg.encoder_options.fused_blocks is forced
    assert cfg.setting("xla_optimizer_update") is forced


def test_epilogues_switch_per_call(monkeypatch):
  """"epilogues": the fused blocks in training calls; predicting, the XLA
  epilogues, whose every output (embeddings, each layer, pooled) equals the
  op-by-op model's up to float32 rounding, and in bfloat16 (the Q/K/V bias
  then folded into its matmul) up to bfloat16 rounding."""
  config = modeling.BertConfig(vocab_size=50, hidden_size=32,
                               num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, hidden_dropout_prob=0.0,
                               attention_probs_dropout_prob=0.0)
  rng = np.random.RandomState(0)
  ids = tf.constant(rng.randint(0, 50, (2, 8)), tf.int32)
  mask = tf.constant([[1] * 8, [1] * 5 + [0] * 3], tf.int32)
  models = {}
  for dtype in (tf.float32, tf.bfloat16):
    for mode in (False, True, "epilogues"):
      tf.random.set_seed(4)
      models[dtype, mode] = modeling.BertModel(
          config, options=modeling.EncoderOptions(compute_dtype=dtype,
                                                  fused_blocks=mode))
      for variable in models[dtype, mode].trainable_variables:
        if variable.name.endswith("bias:0") or "beta" in variable.name:
          variable.assign(tf.random.normal(variable.shape, stddev=0.1,
                                           seed=len(variable.name)))
  calls = []
  for name in ("fused_attention", "attention_for_training"):
    real = getattr(modeling, name)

    def spy(*args, real=real, name=name, **kwargs):
      calls.append(name)
      return real(*args, **kwargs)

    monkeypatch.setattr(modeling, name, spy)
  for dtype, atol in ((tf.float32, 2e-5), (tf.bfloat16, 1e-2)):
    got = models[dtype, "epilogues"](ids, mask, training=False)
    want = models[dtype, False](ids, mask, training=False)
    assert not calls
    assert_bert_outputs_close(got, want, atol)
  # bfloat16 vs float32 op by op: the epilogue path is no further off.
  exact = models[tf.float32, False](ids, mask, training=False).sequence_output
  for mode in (False, "epilogues"):
    low = models[tf.bfloat16, mode](ids, mask, training=False).sequence_output
    assert np.abs(low.numpy() - exact.numpy()).max() < 1e-2
  train = models[tf.float32, "epilogues"](ids, training=True)
  assert calls == ["attention_for_training"] * 2
  np.testing.assert_allclose(
      train.sequence_output.numpy(),
      models[tf.float32, True](ids, training=True).sequence_output.numpy(),
      atol=1e-6)


def test_flags_default_to_unset_and_can_be_forced():
  script = (
      "import sys; sys.path.insert(0, %r)\n"
      "from absl import flags\n"
      "import runner\n"
      "runner.define_runtime_flags()\n"
      "F = flags.FLAGS\n"
      "for argv in ([], ['--fused_blocks'], ['--nofused_blocks'],\n"
      "             ['--xla_optimizer_update=false'], ['--constant_kernels'],\n"
      "             ['--noconstant_kernels']):\n"
      "  F.unparse_flags(); F(['x'] + argv)\n"
      "  cfg = runner.RunConfig.from_flags(F)\n"
      "  print(cfg.fused_blocks, cfg.xla_optimizer_update,\n"
      "        cfg.constant_kernels)\n" % str(ROOT))
  out = subprocess.run([sys.executable, "-c", script], capture_output=True,
                       text=True, check=True).stdout.split("\n")
  assert out[:6] == ["None None None", "True None None", "False None None",
                     "None False None", "None None True", "None None False"]


def test_default_encoder_matches_the_op_by_op_path(monkeypatch):
  """Whatever the default resolves to, the forward stays the original's math
  at the port's float32 tolerance (the fused path differs by rounding)."""
  config = modeling.BertConfig(vocab_size=60, hidden_size=32,
                               num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64)
  rng = np.random.RandomState(3)
  ids = tf.constant(rng.randint(0, 60, size=(3, 12)), tf.int32)
  mask = tf.constant(np.array([[1] * 12, [1] * 7 + [0] * 5, [1] * 3 + [0] * 9]),
                     tf.int32)
  outputs = {}
  for kind in ("avx2", "avx512", "other"):
    monkeypatch.setenv("BERT_CPU_KIND", kind)
    options = runner.RunConfig(None).encoder_options
    tf.random.set_seed(1)
    model = modeling.BertModel(config, options=options)
    for training in (False, True):  # Dropout 0.1: training differs, so
      if training:                   # only its shape and finiteness count.
        out = model(ids, mask, training=True)
        assert np.isfinite(out.sequence_output.numpy()).all()
        continue
      out = model(ids, mask, training=False)
      outputs[(kind, options.fused_blocks)] = (
          out.sequence_output.numpy(), out.pooled_output.numpy())
  reference = outputs[("other", False)]
  for key, (seq, pooled) in outputs.items():
    np.testing.assert_allclose(seq, reference[0], atol=2e-5, err_msg=str(key))
    np.testing.assert_allclose(pooled, reference[1], atol=2e-5,
                               err_msg=str(key))
