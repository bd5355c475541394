"""TF-Hub encoder export, run_classifier_with_tfhub.py and the SavedModel export.

* export_hub: the Hub-format encoder made from an original-format checkpoint
  reproduces modeling.BertModel (max |delta| <= 1e-5) through
  tf.saved_model.load and hub.KerasLayer.
* run_classifier_with_tfhub.py fine-tunes through that export (tiny model),
  writing the usual files and original-name checkpoints.
* --export_dir: the classifier SavedModel's int signature and raw-string
  signature (in-graph tokenizer) checked with saved_model_cli show/run.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import DATA, REFERENCE, ROOT, require

import checkpoints
import export_hub
import modeling
import run_classifier as rc

FORWARD = REFERENCE / "model" / "forward"
VOCAB = REFERENCE / "data" / "vocab.txt"
GLUE = DATA / "glue"


def _tiny_vocab(path, size):
  words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
  words += ["w%d" % i for i in range(size - len(words))]
  path.write_text("\n".join(words) + "\n")
  return path


def test_hub_export_reproduces_bert_model(tmp_path):
  ckpt = require(FORWARD / "tiny_random_ckpt")
  config = modeling.BertConfig.from_json_file(str(ckpt / "bert_config.json"))
  vocab = _tiny_vocab(tmp_path / "vocab.txt", config.vocab_size)
  hub_dir = str(tmp_path / "hub")
  export_hub.export_bert_encoder(config, str(ckpt / "bert_model.ckpt"),
                                 str(vocab), True, hub_dir)
  assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]

  inputs = np.load(FORWARD / "tiny_inputs.npz")
  reference = np.load(FORWARD / "tiny_outputs.npz")
  bert = modeling.BertModel(config)
  checkpoints.init_from_checkpoint(bert.named_variables(),
                                   str(ckpt / "bert_model.ckpt"), log=False)
  want = bert(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"])
  feed = dict(input_word_ids=tf.constant(inputs["input_ids"]),
              input_mask=tf.constant(inputs["input_mask"]),
              input_type_ids=tf.constant(inputs["segment_ids"]))

  import tensorflow_hub as hub
  loaded = tf.saved_model.load(hub_dir)
  layer = hub.KerasLayer(hub_dir, trainable=True)
  for got in (loaded(feed, training=False), layer(feed)):
    assert set(got) >= {"pooled_output", "sequence_output", "encoder_outputs",
                        "default"}
    np.testing.assert_allclose(got["pooled_output"], want.pooled_output,
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["sequence_output"], want.sequence_output,
                               atol=1e-5, rtol=0)
    assert len(got["encoder_outputs"]) == config.num_hidden_layers
    for a, b in zip(got["encoder_outputs"], want.all_encoder_layers):
      np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got["sequence_output"],
                               reference["sequence_output"], atol=1e-5)
  serving = loaded.signatures["serving_default"](**feed)
  np.testing.assert_allclose(serving["pooled_output"], want.pooled_output,
                             atol=1e-5)

  # Vocab asset, casing flag, original names; all weights trainable.
  assert open(loaded.vocab_file.asset_path.numpy().decode()).read() == (
      vocab.read_text())
  assert bool(loaded.do_lower_case.numpy())
  names = [n.decode() for n in loaded.original_names.numpy()]
  assert names == list(bert.named_variables())
  assert len(layer.trainable_weights) == len(names)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(layer(feed, training=True)["pooled_output"])
  grads = tape.gradient(loss, layer.trainable_weights)
  assert all(g is not None for g in grads)

  encoder = export_hub.HubEncoderForClassifier(hub_dir)
  assert list(encoder.named_variables()) == names
  assert encoder.hidden_size() == config.hidden_size


TINY_CONFIG = dict(
    attention_probs_dropout_prob=0.1, hidden_act="gelu",
    hidden_dropout_prob=0.1, hidden_size=32, initializer_range=0.02,
    intermediate_size=64, max_position_embeddings=64, num_attention_heads=2,
    num_hidden_layers=2, type_vocab_size=2, vocab_size=30522)


def _saved_model_cli(*args):
  cli = [sys.executable, "-c",
         "import sys; from tensorflow.python.tools import saved_model_cli; "
         "sys.argv[0] = 'saved_model_cli'; saved_model_cli.main()"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(cli + list(args), capture_output=True, text=True,
                        env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_tfhub_runner_and_classifier_export(tmp_path):
  require(GLUE / "MRPC")
  require(VOCAB)
  # An original-format "pre-trained" checkpoint, exported as a Hub encoder.
  config = modeling.BertConfig.from_dict(TINY_CONFIG)
  bert = modeling.BertModel(config)
  pretrained = checkpoints.save(str(tmp_path / "pretrained"), 0,
                                bert.named_variables())
  hub_dir = str(tmp_path / "hub")
  export_hub.export_bert_encoder(config, pretrained, str(VOCAB), True, hub_dir)

  data = tmp_path / "MRPC"
  data.mkdir()
  for name, rows in (("train", 17), ("dev", 7), ("test", 5)):
    with open(GLUE / "MRPC" / (name + ".tsv"), encoding="utf-8") as f:
      lines = [next(f) for _ in range(rows + 1)]
    (data / (name + ".tsv")).write_text("".join(lines), encoding="utf-8")

  import run_classifier_with_tfhub as rch
  from test_classifier_scripts import run_main
  rch.define_flags()
  out = tmp_path / "out"
  export_dir = tmp_path / "export"
  run_main(["--task_name=MRPC", "--data_dir=%s" % data,
            "--bert_hub_module_handle=%s" % hub_dir,
            "--output_dir=%s" % out, "--do_train=true", "--do_eval=true",
            "--do_predict=true", "--max_seq_length=16",
            "--train_batch_size=8", "--eval_batch_size=4",
            "--predict_batch_size=4", "--learning_rate=1e-3",
            "--num_train_epochs=1", "--seed=1",
            "--export_dir=%s" % export_dir], main=rch.main)

  results = dict(line.strip().split(" = ") for line in open(
      out / "eval_results.txt"))
  assert sorted(results) == ["eval_accuracy", "eval_loss", "global_step",
                             "loss"]
  assert results["global_step"] == "2"
  test_results = np.array([[float(v) for v in line.split("\t")]
                           for line in open(out / "test_results.tsv")])
  assert test_results.shape == (5, 2)
  # Fine-tuned checkpoint: original names for the encoder and the head, and
  # the encoder weights moved away from the Hub module's.
  latest = tf.train.latest_checkpoint(str(out))
  names = dict(tf.train.list_variables(latest))
  assert names["output_weights"] == [2, 32]
  assert names["bert/encoder/layer_1/output/dense/kernel"] == [64, 32]
  tuned = tf.train.load_checkpoint(latest).get_tensor(
      "bert/pooler/dense/kernel")
  assert np.abs(tuned - bert.pooler.named_variables()[
      "bert/pooler/dense/kernel"].numpy()).max() > 0

  # The SavedModel export, checked with saved_model_cli.
  shown = _saved_model_cli("show", "--dir", str(export_dir), "--all")
  for text in ("signature_def['serving_default']",
               "signature_def['serving_text']", "inputs['input_ids']",
               "inputs['segment_ids']", "inputs['text_a']",
               "inputs['text_b']", "outputs['probabilities']"):
    assert text in shown
  assert "label_ids" not in shown

  examples = rc.MrpcProcessor().get_test_examples(str(data))
  np.save(tmp_path / "text_a.npy",
          np.array([e.text_a.encode("utf-8") for e in examples]))
  np.save(tmp_path / "text_b.npy",
          np.array([e.text_b.encode("utf-8") for e in examples]))
  import tokenization
  tokenizer = tokenization.FullTokenizer(str(VOCAB), True)
  features = rc.convert_examples_to_features(examples, ["0", "1"], 16,
                                             tokenizer)
  for key in ("input_ids", "input_mask", "segment_ids"):
    np.save(tmp_path / (key + ".npy"),
            np.array([getattr(f, key) for f in features], np.int32))
  _saved_model_cli(
      "run", "--dir", str(export_dir), "--tag_set", "serve",
      "--signature_def", "serving_text", "--outdir", str(tmp_path / "text"),
      "--inputs", "text_a=%s;text_b=%s" % (tmp_path / "text_a.npy",
                                           tmp_path / "text_b.npy"))
  _saved_model_cli(
      "run", "--dir", str(export_dir), "--tag_set", "serve",
      "--signature_def", "serving_default", "--outdir", str(tmp_path / "ids"),
      "--inputs", ";".join("%s=%s" % (k, tmp_path / (k + ".npy")) for k in (
          "input_ids", "input_mask", "segment_ids")))
  for key in ("input_ids", "input_mask", "segment_ids"):
    np.testing.assert_array_equal(
        np.load(tmp_path / "text" / (key + ".npy")),
        np.load(tmp_path / (key + ".npy")))
  for folder in ("text", "ids"):
    probabilities = np.load(tmp_path / folder / "probabilities.npy")
    np.testing.assert_allclose(probabilities, test_results, atol=1e-6)
  labels = np.load(tmp_path / "ids" / "predicted_label.npy", allow_pickle=True)
  assert [l.decode() for l in labels] == [
      ["0", "1"][i] for i in np.argmax(test_results, axis=1)]


def test_export_from_fused_model_is_op_by_op(tmp_path):
  """A --fused_blocks model exports without XLA-compiled functions (servers
  without XLA can load it), with the fused model's probabilities."""
  require(VOCAB)
  import classifier_export
  config = modeling.BertConfig.from_dict(TINY_CONFIG)
  model = rc.ClassifierModel(config, 2,
                             options=modeling.EncoderOptions(fused_blocks=True))
  ids = np.random.RandomState(0).randint(1, 1000, [3, 16]).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 9:] = 0
  segments = np.zeros_like(ids)
  want = tf.nn.softmax(model.logits(ids, mask, segments, training=False))
  export_dir = tmp_path / "export"
  classifier_export.export_classifier(model, str(export_dir), str(VOCAB), True,
                                      16, ["0", "1"])
  assert model.bert.fused_blocks
  saved = open(export_dir / "saved_model.pb", "rb").read()
  assert b"_XlaMustCompile" not in saved
  loaded = tf.saved_model.load(str(export_dir))
  got = loaded.signatures["serving_default"](
      input_ids=tf.constant(ids), input_mask=tf.constant(mask),
      segment_ids=tf.constant(segments))["probabilities"]
  assert np.abs(got.numpy() - want.numpy()).max() <= 1e-6


def test_in_graph_tokenizer_matches_python(tmp_path):
  import classifier_export
  import tokenization
  require(VOCAB)
  examples = []
  for task, folder in (("mrpc", "MRPC"), ("cola", "CoLA"), ("sts-b", "STS-B"),
                       ("rte", "RTE")):
    examples += [rc.InputExample(e.guid, e.text_a, e.text_b, "0") for e in
                 rc.get_processor(task).get_dev_examples(
                     str(require(GLUE / folder)))[:40]]
  # (A capital sigma ending a word is the documented difference: not here.)
  odd = ["Ünïcödé Straße ΣΟΦΙΑ σοφός İstanbul", "中文字符和English混合", "a\u200bb\x00c",
         "x" * 201, "tab\there\u2028line", "", "   ", "don't stop!!", "ﬁ ½ ①"]
  examples += [rc.InputExample("odd-%d" % i, t, odd[-1 - i], "0")
               for i, t in enumerate(odd)]
  for lower in (True, False):
    tokenizer = tokenization.FullTokenizer(str(VOCAB), lower)
    graph = classifier_export.InGraphTokenizer(str(VOCAB), lower)
    # (Every GLUE file was also checked at 128 and 32 by hand: no difference.)
    for msl in (24,):
      ids, mask, segments = graph.encode_pair(
          tf.constant([e.text_a.encode("utf-8") for e in examples]),
          tf.constant([(e.text_b or "").encode("utf-8") for e in examples]),
          msl)
      want = [rc.convert_single_example(9, e, ["0", "1"], msl, tokenizer)
              for e in examples]
      np.testing.assert_array_equal(ids.numpy(), [f.input_ids for f in want])
      np.testing.assert_array_equal(mask.numpy(), [f.input_mask for f in want])
      np.testing.assert_array_equal(segments.numpy(),
                                    [f.segment_ids for f in want])
