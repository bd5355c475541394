"""convert_checkpoint.py: original format <-> Hugging Face, heads, errors.

Round trips are checked bitwise on the MiniLM reference checkpoint and the
tiny pretraining checkpoint of ../shared/reference; the numbers against the
outputs `transformers` itself computed for the fixtures in tests/fixtures
(written by tests/make_hf_fixtures.py), so no torch is needed here.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy
import tensorflow as tf

from conftest import REFERENCE, ROOT, require

import checkpoints
import common
import convert_checkpoint as cc
import modeling
import run_pretraining

FIXTURES = ROOT / "tests" / "fixtures"
MINILM = REFERENCE / "model" / "minilm_ckpt"
PRETRAIN_TINY = REFERENCE / "model" / "pretrain_tiny"


def _read_original(directory):
  return checkpoints.read_tensors(str(directory))


def _assert_bitwise(got, want):
  assert got.dtype == want.dtype and got.shape == want.shape
  assert got.tobytes() == want.tobytes()


@pytest.fixture(scope="module")
def tiny_vocab(tmp_path_factory):
  """A 512-entry vocab.txt for pretrain_tiny (which ships none)."""
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("".join(["[PAD]\n", "[UNK]\n", "[CLS]\n", "[SEP]\n",
                           "[MASK]\n"] + ["w%d\n" % i for i in range(507)]))
  return path


# ------------------------------------------------------------------------------------
# Round trips, bitwise.
# ------------------------------------------------------------------------------------


def test_minilm_original_to_hf_to_original_is_bitwise(tmp_path):
  require(MINILM / "bert_model.ckpt.index")
  hf = tmp_path / "hf"
  cc.convert(str(MINILM), str(hf))
  config = json.loads((hf / "config.json").read_text())
  assert config["architectures"] == ["BertModel"]
  assert config["model_type"] == "bert"
  assert config["hidden_act"] == "gelu_new"  # The original gelu is tanh.
  assert json.loads((hf / "tokenizer_config.json").read_text())[
      "do_lower_case"] is True
  assert (hf / "vocab.txt").read_bytes() == (MINILM / "vocab.txt").read_bytes()
  weights = safetensors_numpy.load_file(str(hf / "model.safetensors"))
  source = _read_original(MINILM)
  assert len(weights) == len(source)
  # A kernel is stored [out, in] on the Hugging Face side.
  _assert_bitwise(
      weights["encoder.layer.3.attention.self.query.weight"],
      np.ascontiguousarray(
          source["bert/encoder/layer_3/attention/self/query/kernel"].T))

  back = tmp_path / "back"
  cc.convert(str(hf), str(back))
  assert sorted(os.listdir(back)) == [
      "bert_config.json", "bert_model.ckpt.data-00000-of-00001",
      "bert_model.ckpt.index", "tokenizer_config.json", "vocab.txt"]
  again = _read_original(back)
  assert sorted(again) == sorted(source)
  for name, value in source.items():
    _assert_bitwise(again[name], value)
  assert (json.loads((back / "bert_config.json").read_text()) ==
          json.loads((MINILM / "bert_config.json").read_text()))
  assert ((back / "vocab.txt").read_bytes() ==
          (MINILM / "vocab.txt").read_bytes())


def test_pretraining_checkpoint_round_trip_keeps_heads(tmp_path, tiny_vocab):
  require(PRETRAIN_TINY / "model.ckpt-20.index")
  hf = tmp_path / "hf"
  model = cc.convert(str(PRETRAIN_TINY / "model.ckpt-20"), str(hf),
                     cc.Options(vocab_file=str(tiny_vocab)))
  assert any("adam_m" in n and "global_step" in n for n in model.notes)
  config = json.loads((hf / "config.json").read_text())
  assert config["architectures"] == ["BertForPreTraining"]
  weights = safetensors_numpy.load_file(str(hf / "model.safetensors"))
  assert "cls.predictions.bias" in weights
  assert "cls.seq_relationship.weight" in weights
  assert not any("decoder" in n or "adam" in n for n in weights)

  back = tmp_path / "back"
  cc.convert(str(hf), str(back))
  source = _read_original(PRETRAIN_TINY / "model.ckpt-20")
  again = _read_original(back)
  kept = {n: v for n, v in source.items() if not cc.is_training_state(n)}
  assert sorted(again) == sorted(kept)
  for name, value in kept.items():
    _assert_bitwise(again[name], value)
  # The heads load into run_pretraining's model with nothing missing.
  bert_config = modeling.BertConfig.from_json_file(
      str(back / "bert_config.json"))
  report = checkpoints.init_from_checkpoint(
      run_pretraining.PretrainingModel(bert_config).named_variables(),
      str(back), log=False)
  assert not report.missing and not report.unused


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_hf_to_original_to_hf_is_bitwise(tmp_path, act):
  src = FIXTURES / ("hf_tiny_" + act)
  cc.convert(str(src), str(tmp_path / "original"))
  ours = json.loads((tmp_path / "original" / "bert_config.json").read_text())
  assert ours["hidden_act"] == {"gelu": "gelu_exact", "gelu_new": "gelu"}[act]
  cc.convert(str(tmp_path / "original"), str(tmp_path / "hf"))
  want = safetensors_numpy.load_file(str(src / "model.safetensors"))
  got = safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
  assert sorted(got) == sorted(want)
  for name, value in want.items():
    _assert_bitwise(got[name], value)
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert config["hidden_act"] == act
  assert config["architectures"] == ["BertForPreTraining"]


def test_vocab_and_case_from_a_transformers_v5_directory(tmp_path):
  # hf_tiny_gelu was saved by transformers 5: tokenizer.json, no vocab.txt.
  src = FIXTURES / "hf_tiny_gelu"
  assert not (src / "vocab.txt").exists()
  cc.convert(str(src), str(tmp_path / "original"))
  vocab = (tmp_path / "original" / "vocab.txt").read_text().splitlines()
  tokenizer = json.loads((src / "tokenizer.json").read_text())
  assert len(vocab) == 100
  assert {t: i for i, t in enumerate(vocab)} == tokenizer["model"]["vocab"]
  assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  assert json.loads((tmp_path / "original" / "tokenizer_config.json")
                    .read_text())["do_lower_case"] is True
  # do_lower_case travels back from the file beside the checkpoint.
  cc.convert(str(tmp_path / "original"), str(tmp_path / "hf"))
  assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())[
      "do_lower_case"] is True


def test_do_lower_case_is_checked_against_the_model_name(tmp_path):
  named = tmp_path / "bert-base-cased"
  shutil.copytree(FIXTURES / "hf_tiny_gelu_new", named)
  with pytest.raises(common.UserError, match="cased model"):
    cc.convert(str(named), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
  cc.convert(str(named), str(tmp_path / "out"),
             cc.Options(do_lower_case=False))


def test_keep_layers_renumbers_bitwise(tmp_path):
  require(MINILM / "bert_model.ckpt.index")
  out = tmp_path / "student"
  cc.convert(str(MINILM), str(out),
             cc.Options(keep_layers=["0", "2", "4"], output_format="original"))
  assert json.loads((out / "bert_config.json").read_text())[
      "num_hidden_layers"] == 3
  source = _read_original(MINILM)
  got = _read_original(out)
  for new, old in enumerate([0, 2, 4]):
    for name, value in source.items():
      if name.startswith("bert/encoder/layer_%d/" % old):
        _assert_bitwise(got[name.replace("layer_%d/" % old,
                                         "layer_%d/" % new)], value)
  assert not any(n.startswith("bert/encoder/layer_3/") for n in got)
  _assert_bitwise(got["bert/embeddings/word_embeddings"],
                  source["bert/embeddings/word_embeddings"])
  with pytest.raises(common.UserError, match="keep_layers"):
    cc.convert(str(MINILM), str(tmp_path / "bad"),
               cc.Options(keep_layers=["0", "6"]))


# ------------------------------------------------------------------------------------
# The numbers of transformers survive.
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_converted_model_gives_transformers_outputs(tmp_path, act):
  src = FIXTURES / ("hf_tiny_" + act)
  cc.convert(str(src), str(tmp_path))
  want = np.load(src / "outputs.npz")
  bert_config = modeling.BertConfig.from_json_file(
      str(tmp_path / "bert_config.json"))
  model = run_pretraining.PretrainingModel(bert_config)
  report = checkpoints.init_from_checkpoint(model.named_variables(),
                                            str(tmp_path), log=False)
  assert not report.missing
  positions = want["masked_lm_positions"]
  features = {
      "input_ids": tf.constant(want["input_ids"]),
      "input_mask": tf.constant(want["input_mask"]),
      "segment_ids": tf.constant(want["segment_ids"]),
      "masked_lm_positions": tf.constant(positions),
      "masked_lm_ids": tf.zeros_like(positions),
      "masked_lm_weights": tf.ones(positions.shape, tf.float32),
      "next_sentence_labels": tf.zeros([positions.shape[0], 1], tf.int32),
  }
  encoder = model.bert(features["input_ids"], input_mask=features["input_mask"],
                       token_type_ids=features["segment_ids"])
  out = model(features)
  nsp_logits = tf.matmul(encoder.pooled_output, model.seq_relationship_weights,
                         transpose_b=True) + model.seq_relationship_bias
  mask = want["input_mask"].astype(bool)  # Padded positions are not compared.
  checks = {
      "sequence_output": (encoder.sequence_output.numpy()[mask],
                          want["sequence_output"][mask]),
      "pooled_output": (encoder.pooled_output.numpy(), want["pooled_output"]),
      "masked_lm_log_probs": (
          out.masked_lm_log_probs.numpy(),
          want["masked_lm_log_probs"].reshape(-1, bert_config.vocab_size)),
      "next_sentence_logits": (nsp_logits.numpy(),
                               want["next_sentence_logits"]),
  }
  for name, (got, expected) in checks.items():
    assert got.shape == expected.shape, name
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=name)
  # With the other gelu the numbers would not match: the mapping matters.
  bert_config.hidden_act = {"gelu": "gelu_exact",
                            "gelu_exact": "gelu"}[bert_config.hidden_act]
  wrong = modeling.BertModel(bert_config)
  checkpoints.init_from_checkpoint(wrong.named_variables(), str(tmp_path),
                                   log=False)
  wrong_output = wrong(features["input_ids"], input_mask=features["input_mask"],
                       token_type_ids=features["segment_ids"]).sequence_output
  assert np.abs(wrong_output.numpy()[mask] -
                want["sequence_output"][mask]).max() > 1e-4


def test_gelu_exact_is_the_erf_form():
  x = np.linspace(-4, 4, 101).astype(np.float32)
  from math import erf, sqrt  # pylint: disable=g-import-not-at-top
  want = np.array([v * 0.5 * (1 + erf(v / sqrt(2))) for v in x.astype(float)])
  got = modeling.get_activation("gelu_exact")(tf.constant(x)).numpy()
  np.testing.assert_allclose(got, want, atol=1e-6)
  tanh = modeling.get_activation("gelu")(tf.constant(x)).numpy()
  assert np.abs(tanh - want).max() > 1e-5  # "gelu" stays the tanh form.


# ------------------------------------------------------------------------------------
# Task heads.
# ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_original(tmp_path_factory):
  out = tmp_path_factory.mktemp("tiny_original") / "model"
  cc.convert(str(FIXTURES / "hf_tiny_gelu_new"), str(out))
  return out


def _with_head(base, directory, head):
  """Our training checkpoint: base weights, a head, Adam slots, a stray."""
  tensors = _read_original(base)
  rng = np.random.RandomState(0)
  tensors.update({n: rng.normal(size=s).astype(np.float32)
                  for n, s in head.items()})
  named = dict(tensors)
  for name, value in tensors.items():
    named[name + "/adam_m"] = np.zeros_like(value)
    named[name + "/adam_v"] = np.zeros_like(value)
  named["global_step"] = np.int64(7)
  named["stray/variable"] = np.ones([3], np.float32)
  checkpoints.save(str(directory), 7, named)
  for f in ("bert_config.json", "vocab.txt"):
    shutil.copy(base / f, directory / f)
  return tensors


@pytest.mark.parametrize("head,architecture", [
    ({"output_weights": [2, 32], "output_bias": [2]},
     "BertForSequenceClassification"),
    ({"cls/squad/output_weights": [2, 32], "cls/squad/output_bias": [2]},
     "BertForQuestionAnswering"),
])
def test_task_heads_both_ways(tmp_path, tiny_original, head, architecture):
  tensors = _with_head(tiny_original, tmp_path / "ours", head)
  options = cc.Options(task_name="mrpc" if "output_bias" in head else None)
  model = cc.convert(str(tmp_path / "ours"), str(tmp_path / "hf"), options)
  notes = " ".join(model.notes)
  assert "global_step" in notes and "adam_v" in notes
  assert "stray/variable" in notes  # Listed, not silently dropped.
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert config["architectures"] == [architecture]
  weights = safetensors_numpy.load_file(
      str(tmp_path / "hf" / "model.safetensors"))
  if architecture == "BertForSequenceClassification":
    assert config["id2label"] == {"0": "0", "1": "1"}
    _assert_bitwise(weights["classifier.weight"], tensors["output_weights"])
  else:
    # BertForQuestionAnswering has no pooler: left out and said so.
    assert not any("pooler" in n for n in weights)
    assert "bert/pooler/dense/kernel" in notes
    _assert_bitwise(weights["qa_outputs.weight"],
                    tensors["cls/squad/output_weights"])
  cc.convert(str(tmp_path / "hf"), str(tmp_path / "back"))
  again = _read_original(tmp_path / "back")
  for name in head:
    _assert_bitwise(again[name], tensors[name])


# ------------------------------------------------------------------------------------
# Bad input: one clear line, nothing written.
# ------------------------------------------------------------------------------------


def _hf_copy(tmp_path, edit_config=None):
  d = tmp_path / "hf_in"
  shutil.copytree(FIXTURES / "hf_tiny_gelu_new", d)
  if edit_config:
    config = json.loads((d / "config.json").read_text())
    edit_config(config)
    (d / "config.json").write_text(json.dumps(config))
  return d


def _refused(tmp_path, input_path, pattern, options=None):
  out = tmp_path / "out"
  with pytest.raises(common.UserError, match=pattern) as e:
    cc.convert(str(input_path), str(out), options)
  assert "\n" not in str(e.value)
  assert not out.exists()
  assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
  return str(e.value)


def test_neither_format(tmp_path):
  junk = tmp_path / "junk"
  junk.mkdir()
  (junk / "notes.txt").write_text("hello")
  message = _refused(tmp_path, junk, "neither an original-format checkpoint")
  assert "Hugging Face directory" in message


def test_config_missing_keys(tmp_path):
  d = _hf_copy(tmp_path, lambda c: c.pop("hidden_size"))
  _refused(tmp_path, d, "config.json lacks the key hidden_size")
  original = tmp_path / "original"
  cc.convert(str(FIXTURES / "hf_tiny_gelu_new"), str(original))
  config = json.loads((original / "bert_config.json").read_text())
  del config["intermediate_size"]
  (original / "bert_config.json").write_text(json.dumps(config))
  _refused(tmp_path, original, "bert_config.json lacks the key "
           "intermediate_size")


def test_shapes_that_do_not_match_the_config(tmp_path):
  d = _hf_copy(tmp_path, lambda c: c.update(hidden_size=48))
  message = _refused(tmp_path, d, "has shape")
  assert ("tensor bert.embeddings.position_embeddings.weight has shape "
          "[64, 32]") in message
  assert "implies [64, 48]" in message and "hidden_size=48" in message
  d2 = tmp_path / "hf_in2"
  shutil.copytree(FIXTURES / "hf_tiny_gelu_new", d2)
  config = json.loads((d2 / "config.json").read_text())
  config["intermediate_size"] = 40
  (d2 / "config.json").write_text(json.dumps(config))
  message = _refused(tmp_path, d2, "has shape")
  # A kernel is named and shaped as the input holds it ([out, in]).
  assert "bert.encoder.layer.0.intermediate.dense.weight" in message
  assert "[37, 32]" in message and "[40, 32]" in message


def test_output_holding_a_different_model(tmp_path):
  out = tmp_path / "out"
  cc.convert(str(FIXTURES / "hf_tiny_gelu_new"), str(out))
  before = sorted(os.listdir(out))
  cc.convert(str(FIXTURES / "hf_tiny_gelu_new"), str(out))  # Same: fine.
  with pytest.raises(common.UserError, match="already holds a different "
                     "model.*--overwrite"):
    cc.convert(str(FIXTURES / "hf_tiny_gelu"), str(out))
  assert sorted(os.listdir(out)) == before
  assert json.loads((out / "bert_config.json").read_text())[
      "hidden_act"] == "gelu"
  assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
  cc.convert(str(FIXTURES / "hf_tiny_gelu"), str(out),
             cc.Options(overwrite=True))
  assert json.loads((out / "bert_config.json").read_text())[
      "hidden_act"] == "gelu_exact"


def test_pytorch_bin_without_torch(tmp_path, monkeypatch):
  d = tmp_path / "torch_model"
  d.mkdir()
  shutil.copy(FIXTURES / "hf_tiny_gelu_new" / "config.json", d)
  shutil.copy(FIXTURES / "hf_tiny_gelu_new" / "vocab.txt", d)
  (d / "pytorch_model.bin").write_bytes(b"not really a pickle")
  monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails.
  _refused(tmp_path, d, "pytorch_model.bin .*needs torch.*not installed")


def test_script_reports_one_line_and_exit_1(tmp_path):
  junk = tmp_path / "junk"
  junk.mkdir()
  proc = subprocess.run(
      [sys.executable, str(ROOT / "convert_checkpoint.py"),
       "--input=%s" % junk, "--output=%s" % (tmp_path / "out")],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 1
  errors = [l for l in proc.stderr.splitlines() if l.startswith("ERROR: ")]
  assert len(errors) == 1 and "neither" in errors[0], proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "out").exists()


def test_bfloat16_safetensors_widen_exactly(tmp_path):
  """numpy has no bfloat16: such files are read by hand, widened exactly."""
  src = FIXTURES / "hf_tiny_gelu_new"
  d = tmp_path / "bf16"
  d.mkdir()
  shutil.copy(src / "config.json", d)
  shutil.copy(src / "vocab.txt", d)
  weights = safetensors_numpy.load_file(str(src / "model.safetensors"))
  header, chunks, offset = {}, [], 0
  for name in sorted(weights):
    top = (weights[name].view(np.uint32) >> 16).astype("<u2").tobytes()
    header[name] = {"dtype": "BF16", "shape": list(weights[name].shape),
                    "data_offsets": [offset, offset + len(top)]}
    chunks.append(top)
    offset += len(top)
  header["__metadata__"] = {"format": "pt"}
  text = json.dumps(header).encode()
  (d / "model.safetensors").write_bytes(
      len(text).to_bytes(8, "little") + text + b"".join(chunks))
  cc.convert(str(d), str(tmp_path / "out"))
  got = _read_original(tmp_path / "out")
  want = weights["bert.encoder.layer.1.output.dense.weight"].T
  truncated = (want.view(np.uint32) & 0xFFFF0000).view(np.float32)
  np.testing.assert_array_equal(
      got["bert/encoder/layer_1/output/dense/kernel"], truncated)
  assert got["bert/encoder/layer_1/output/dense/kernel"].dtype == np.float32
  # The reader used when safetensors' numpy API cannot make bfloat16 arrays.
  by_hand = cc._load_safetensors_bfloat16(str(d / "model.safetensors"))
  np.testing.assert_array_equal(
      by_hand["bert.encoder.layer.1.output.dense.weight"], truncated.T)
  assert by_hand["bert.encoder.layer.1.output.dense.weight"].dtype == np.float32
