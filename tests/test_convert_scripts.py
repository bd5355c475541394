"""Every script runs on a Hugging Face model converted by convert_checkpoint.py.

The model is tests/fixtures/hf_tiny_gelu: a tiny BertForPreTraining saved by
transformers 5 (tokenizer.json, no vocab.txt; hidden_act "gelu", the erf form,
which becomes "gelu_exact"). run_classifier.py (MRPC fine-tune + eval),
run_squad.py (train + predict), extract_features.py and run_pretraining.py
(continued from the converted MLM/NSP heads) run on it as subprocesses,
started together; the fine-tuned classifier then converts back to a
BertForSequenceClassification directory.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy
import tensorflow as tf

from conftest import DATA, ROOT, require

import checkpoints
import convert_checkpoint as cc

FIXTURE = ROOT / "tests" / "fixtures" / "hf_tiny_gelu"
MRPC = DATA / "glue" / "MRPC"

SQUAD = {"version": "1.1", "data": [{"title": "Cats", "paragraphs": [
    {"context": "the cat sat on the mat . the dog ran to the house .",
     "qas": [{"id": "q1", "question": "where did the cat sit ?",
              "answers": [{"text": "on the mat", "answer_start": 12}]},
             {"id": "q2", "question": "where did the dog run ?",
              "answers": [{"text": "to the house", "answer_start": 39}]}]},
    {"context": "she was in a big red house and he was in a small tree .",
     "qas": [{"id": "q3", "question": "was the house big ?",
              "answers": [{"text": "big red house", "answer_start": 13}]}]},
]}]}


def _write_pretraining_record(path, outputs, masked_lm_ids, labels):
  with tf.io.TFRecordWriter(str(path)) as writer:
    for i in range(outputs["input_ids"].shape[0]):
      ints = {
          "input_ids": outputs["input_ids"][i],
          "input_mask": outputs["input_mask"][i],
          "segment_ids": outputs["segment_ids"][i],
          "masked_lm_positions": outputs["masked_lm_positions"][i],
          "masked_lm_ids": masked_lm_ids[i],
          "next_sentence_labels": [labels[i]],
      }
      feats = {k: tf.train.Feature(int64_list=tf.train.Int64List(
          value=[int(x) for x in v])) for k, v in ints.items()}
      feats["masked_lm_weights"] = tf.train.Feature(
          float_list=tf.train.FloatList(value=[1.0] * len(masked_lm_ids[i])))
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feats)).SerializeToString())


def _script(name, **flag_values):
  return [sys.executable, str(ROOT / name)] + [
      "--%s=%s" % kv for kv in flag_values.items()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Converts the fixture, then starts the four scripts at once."""
  require(MRPC / "train.tsv")
  root = tmp_path_factory.mktemp("convert_scripts")
  model = root / "converted"
  cc.convert(str(FIXTURE), str(model))
  common_flags = dict(bert_config_file=model / "bert_config.json",
                      vocab_file=model / "vocab.txt",
                      init_checkpoint=model / "bert_model.ckpt")

  mrpc = root / "mrpc"
  mrpc.mkdir()
  for name, rows in (("train", 17), ("dev", 7)):
    with open(MRPC / (name + ".tsv"), encoding="utf-8") as f:
      lines = [next(f) for _ in range(rows + 1)]
    (mrpc / (name + ".tsv")).write_text("".join(lines), encoding="utf-8")
  (root / "squad.json").write_text(json.dumps(SQUAD))
  (root / "text.txt").write_text(
      "the cat sat on the mat .\nthe dog ||| ran to the house\nshe was big\n")
  outputs = dict(np.load(FIXTURE / "outputs.npz"))
  masked_lm_ids = np.array([[31, 40, 33], [52, 53, 2]])
  nsp_labels = [0, 1]
  _write_pretraining_record(root / "pretrain.tfrecord", outputs, masked_lm_ids,
                            nsp_labels)

  commands = {
      "classifier": _script(
          "run_classifier.py", task_name="mrpc", data_dir=mrpc,
          output_dir=root / "out_classifier", do_train="true", do_eval="true",
          max_seq_length=32, train_batch_size=8, eval_batch_size=8,
          learning_rate=1e-3, num_train_epochs=1, **common_flags),
      "squad": _script(
          "run_squad.py", train_file=root / "squad.json",
          predict_file=root / "squad.json", output_dir=root / "out_squad",
          do_train="true", do_predict="true", max_seq_length=32, doc_stride=16,
          max_query_length=12, train_batch_size=2, predict_batch_size=4,
          learning_rate=1e-3, num_train_epochs=1, **common_flags),
      "features": _script(
          "extract_features.py", input_file=root / "text.txt",
          output_file=root / "features.jsonl", layers="-1,-2",
          max_seq_length=16, batch_size=4, **common_flags),
      # Learning rate 0: the two steps leave the weights as they are, so the
      # evaluation afterwards measures the converted heads themselves.
      "pretraining": _script(
          "run_pretraining.py", input_file=root / "pretrain.tfrecord",
          output_dir=root / "out_pretraining", do_train="true", do_eval="true",
          max_seq_length=12, max_predictions_per_seq=3, train_batch_size=2,
          eval_batch_size=2, num_train_steps=2, num_warmup_steps=0,
          learning_rate=0.0, max_eval_steps=1,
          bert_config_file=model / "bert_config.json",
          init_checkpoint=model / "bert_model.ckpt"),
  }
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  procs = {name: subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, env=env)
           for name, cmd in commands.items()}
  results = {}

  def wait(name):
    if name not in results:
      _, stderr = procs[name].communicate(timeout=600)
      assert procs[name].returncode == 0, stderr[-4000:]
      results[name] = stderr
    return results[name]

  yield dict(root=root, model=model, wait=wait, outputs=outputs,
             masked_lm_ids=masked_lm_ids, nsp_labels=nsp_labels)
  for proc in procs.values():
    if proc.poll() is None:
      proc.kill()
      proc.communicate()


def _read_kv(path):
  return dict(line.rstrip("\n").split(" = ") for line in open(path)
              if " = " in line)


def test_converted_model_config(runs):
  config = json.loads((runs["model"] / "bert_config.json").read_text())
  assert config["hidden_act"] == "gelu_exact"


def test_run_classifier_mrpc_then_back_to_hf(runs):
  runs["wait"]("classifier")
  out = runs["root"] / "out_classifier"
  result = _read_kv(out / "eval_results.txt")
  assert 0.0 <= float(result["eval_accuracy"]) <= 1.0
  assert np.isfinite(float(result["eval_loss"]))
  # The fine-tuned checkpoint becomes a BertForSequenceClassification.
  hf = runs["root"] / "classifier_hf"
  cc.convert(str(out), str(hf), cc.Options(
      bert_config_file=str(runs["model"] / "bert_config.json"),
      vocab_file=str(runs["model"] / "vocab.txt"), task_name="mrpc"))
  config = json.loads((hf / "config.json").read_text())
  assert config["architectures"] == ["BertForSequenceClassification"]
  assert config["id2label"] == {"0": "0", "1": "1"}
  assert config["hidden_act"] == "gelu"
  weights = safetensors_numpy.load_file(str(hf / "model.safetensors"))
  trained = checkpoints.read_tensors(str(out))
  np.testing.assert_array_equal(weights["classifier.weight"],
                                trained["output_weights"])


def test_run_squad(runs):
  runs["wait"]("squad")
  predictions = json.loads(
      (runs["root"] / "out_squad" / "predictions.json").read_text())
  assert sorted(predictions) == ["q1", "q2", "q3"]


def test_extract_features(runs):
  runs["wait"]("features")
  lines = (runs["root"] / "features.jsonl").read_text().splitlines()
  assert len(lines) == 3
  record = json.loads(lines[0])
  assert record["features"][0]["token"] == "[CLS]"
  layers = record["features"][0]["layers"]
  assert [l["index"] for l in layers] == [-1, -2]
  assert len(layers[0]["values"]) == 32


def test_run_pretraining_continues_from_the_converted_heads(runs):
  runs["wait"]("pretraining")
  out = runs["root"] / "out_pretraining"
  result = _read_kv(out / "eval_results.txt")
  # The losses of transformers' own MLM log-probabilities and NSP logits.
  outputs = runs["outputs"]
  log_probs = outputs["masked_lm_log_probs"]
  ids = runs["masked_lm_ids"]
  want_mlm = -np.mean(np.take_along_axis(log_probs, ids[..., None], -1))
  logits = outputs["next_sentence_logits"].astype(np.float64)
  nsp_log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  want_nsp = -np.mean(nsp_log_probs[[0, 1], runs["nsp_labels"]])
  assert abs(float(result["masked_lm_loss"]) - want_mlm) < 1e-5
  assert abs(float(result["next_sentence_loss"]) - want_nsp) < 1e-5
  assert int(result["global_step"]) == 2
  # The heads were loaded (not initialised): the trained checkpoint holds them.
  saved = checkpoints.read_tensors(str(out))
  converted = checkpoints.read_tensors(str(runs["model"]))
  for name in ("cls/predictions/output_bias",
               "cls/seq_relationship/output_weights"):
    np.testing.assert_array_equal(saved[name], converted[name])
