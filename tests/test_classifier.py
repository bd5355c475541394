"""run_classifier.py: processors, features, TFRecords and the classifier head.

Oracles: ../shared/reference/data/classifier (the original processors and
file_based_convert_examples_to_features) and ../shared/reference/model/
classifier (the original create_model in EVAL mode on MiniLM).
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import DATA, REFERENCE, require

import run_classifier as rc

CLASSIFIER_REF = REFERENCE / "data" / "classifier"
MODEL_REF = REFERENCE / "model"
GLUE = DATA / "glue"
FEATURE_KEYS = ["input_ids", "input_mask", "segment_ids", "label_ids",
                "is_real_example"]

# name -> (task, set, max_seq_length, number of examples, tpu padding)
REFERENCE_RUNS = {
    "mrpc_dev_all": ("mrpc", "dev", 128, None, 0),
    "mrpc_train_first200": ("mrpc", "train", 128, 200, 0),
    "mrpc_dev_all_msl32": ("mrpc", "dev", 32, None, 0),
    "cola_dev_first200": ("cola", "dev", 128, 200, 0),
    "cola_dev_first200_msl8": ("cola", "dev", 8, 200, 0),
    "mrpc_test_first5_tpu_padded": ("mrpc", "test", 128, 5, 3),
    "cola_test_first5_tpu_padded": ("cola", "test", 128, 5, 3),
}


@pytest.fixture(scope="module")
def tokenizer():
  import tokenization
  vocab = require(REFERENCE / "data" / "vocab.txt")
  return tokenization.FullTokenizer(str(vocab), do_lower_case=True)


GLUE_DIRS = {"cola": "CoLA", "mrpc": "MRPC", "sst-2": "SST-2", "qnli": "QNLI",
             "rte": "RTE", "wnli": "WNLI", "sts-b": "STS-B",
             "ax": "diagnostic"}


def _examples(task, set_name):
  processor = rc.get_processor(task)
  data_dir = str(require(GLUE / GLUE_DIRS[task]))
  return getattr(processor, "get_%s_examples" % set_name)(data_dir)


def _example_dict(example):
  if isinstance(example, rc.PaddingInputExample):
    return {"padding_input_example": True}
  return {"guid": example.guid, "text_a": example.text_a,
          "text_b": example.text_b, "label": example.label}


def parse_tfrecord(path):
  """Parsed records as canonical dicts (the reference JSONL layout)."""
  records = []
  for raw in tf.data.TFRecordDataset(str(path)):
    example = tf.train.Example.FromString(raw.numpy())
    feature = example.features.feature
    assert sorted(feature.keys()) == sorted(FEATURE_KEYS)
    records.append({k: list(feature[k].int64_list.value) for k in FEATURE_KEYS})
  return records


def _read_jsonl(path):
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("name", sorted(REFERENCE_RUNS))
def test_tfrecords_match_reference(name, tokenizer, tmp_path):
  task, set_name, msl, count, padding = REFERENCE_RUNS[name]
  examples = _examples(task, set_name)
  if count is not None:
    examples = examples[:count]
  examples = examples + [rc.PaddingInputExample() for _ in range(padding)]
  want_examples = _read_jsonl(require(CLASSIFIER_REF / (name + ".examples.jsonl")))
  assert [_example_dict(e) for e in examples] == want_examples

  out = tmp_path / (name + ".tf_record")
  label_list = rc.get_processor(task).get_labels()
  rc.file_based_convert_examples_to_features(examples, label_list, msl,
                                             tokenizer, str(out))
  got = parse_tfrecord(out)
  want = _read_jsonl(CLASSIFIER_REF / (name + ".jsonl"))
  assert len(got) == len(want)
  assert got == want
  # The reference TFRecord itself parses to the same records.
  assert parse_tfrecord(CLASSIFIER_REF / (name + ".tfrecord")) == want
  assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_processors_match_summary():
  summary = json.loads(
      require(CLASSIFIER_REF / "processors_summary.json").read_text())
  for task_upper, info in summary.items():
    if not isinstance(info, dict) or "processor" not in info:
      continue
    task = task_upper.lower()
    processor = rc.get_processor(task)
    assert processor.get_labels() == info["labels"]
    for set_name in ("train", "dev", "test"):
      examples = _examples(task, set_name)
      assert len(examples) == info["num_%s_examples" % set_name]
      first = info["first_%s_examples" % set_name]
      assert [_example_dict(e) for e in examples[:len(first)]] == first


def test_input_fn_parses_file(tokenizer, tmp_path):
  examples = _examples("mrpc", "dev")[:5]
  out = str(tmp_path / "eval.tf_record")
  rc.file_based_convert_examples_to_features(examples, ["0", "1"], 16,
                                             tokenizer, out)
  input_fn = rc.file_based_input_fn_builder(out, 16, False, False)
  batches = list(input_fn({"batch_size": 2}))
  assert [int(b["input_ids"].shape[0]) for b in batches] == [2, 2, 1]
  assert batches[0]["input_ids"].dtype == tf.int32
  assert batches[0]["label_ids"].shape == (2,)
  assert batches[0]["is_real_example"].numpy().tolist() == [1, 1]
  # In-memory builder (the Colab's) gives the same tensors.
  features = rc.convert_examples_to_features(examples, ["0", "1"], 16,
                                             tokenizer)
  mem = list(rc.input_fn_builder(features, 16, False, False)(
      {"batch_size": 2}))
  for a, b in zip(batches, mem):
    for k in ("input_ids", "input_mask", "segment_ids", "label_ids"):
      np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
  train = rc.file_based_input_fn_builder(out, 16, True, True)({"batch_size": 4})
  assert [int(b["input_ids"].shape[0]) for b in train.take(3)] == [4, 4, 4]


def test_truncation_rule():
  for la in range(0, 9):
    for lb in range(0, 9):
      a, b = list(range(la)), list(range(100, 100 + lb))
      rc._truncate_seq_pair(a, b, 5)
      assert len(a) + len(b) == min(5, la + lb)
      # The longer list loses its last tokens first; ties cut b.
      assert a == list(range(len(a))) and b == list(range(100, 100 + len(b)))


def _write(path, text, mode="w"):
  path.parent.mkdir(parents=True, exist_ok=True)
  if mode == "wb":
    path.write_bytes(text)
  else:
    path.write_text(text, encoding="utf-8")


MNLI_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
               "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
               "sentence1\tsentence2\tlabel1\tgold_label\n")


def test_mnli_and_xnli_processors(tmp_path):
  mnli = tmp_path / "MNLI"
  _write(mnli / "train.tsv", MNLI_HEADER +
         "0\t1\t1e\tgov\tb\tb\tp\tp\tConceptually \"cream\" skimming\t"
         "Product and geography\tneutral\tneutral\n"
         "1\t2\t2c\tfiction\tb\tb\tp\tp\tyou know\tYou lose\tentailment\t"
         "entailment\n")
  _write(mnli / "dev_matched.tsv", MNLI_HEADER.replace("label1\t", "label1\tlabel2\t") +
         "7\t3\t3n\tgov\tb\tb\tp\tp\tThe new rights\tEveryone\tneutral\t"
         "contradiction\tcontradiction\n")
  _write(mnli / "test_matched.tsv", MNLI_HEADER.replace("\tlabel1\tgold_label", "") +
         "9\t4\t4x\tgov\tb\tb\tp\tp\tHello there\tGeneral\n")
  p = rc.get_processor("MNLI")
  assert p.get_labels() == ["contradiction", "entailment", "neutral"]
  train = p.get_train_examples(str(mnli))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
      ("train-0", "Conceptually \"cream\" skimming", "Product and geography",
       "neutral"), ("train-1", "you know", "You lose", "entailment")]
  dev = p.get_dev_examples(str(mnli))
  assert [(e.guid, e.label) for e in dev] == [("dev_matched-7", "contradiction")]
  test = p.get_test_examples(str(mnli))
  assert [(e.guid, e.text_a, e.label) for e in test] == [
      ("test-9", "Hello there", "contradiction")]

  xnli = tmp_path / "XNLI"
  _write(xnli / "multinli" / "multinli.train.zh.tsv",
         "premise\thypo\tlabel\n"
         "他说\t他没说\tcontradictory\n"
         "一\t二\tneutral\n")
  dev_header = "\t".join(["language", "gold_label"] + ["c%d" % i for i in range(2, 6)] +
                         ["sentence1", "sentence2"]) + "\n"
  _write(xnli / "xnli.dev.tsv", dev_header +
         "en\tneutral\ta\tb\tc\td\tEnglish one\tEnglish two\n"
         "zh\tentailment\ta\tb\tc\td\t中文\t中文二\n")
  x = rc.get_processor("xnli")
  train = x.get_train_examples(str(xnli))
  assert [(e.guid, e.text_a, e.text_b, e.label) for e in train] == [
      ("train-1", "他说", "他没说", "contradiction"),
      ("train-2", "一", "二", "neutral")]
  dev = x.get_dev_examples(str(xnli))
  assert [(e.guid, e.text_a, e.label) for e in dev] == [
      ("dev-2", "中文", "entailment")]
  with pytest.raises(ValueError, match="no test set"):
    x.get_test_examples(str(xnli))


def test_other_glue_processors():
  qqp_dir = None
  checks = {
      "sst-2": (["0", "1"], ("dev-1", "it 's a charming and often affecting "
                             "journey . ", None, "1")),
      "rte": (["entailment", "not_entailment"], None),
      "wnli": (["0", "1"], ("dev-1", "The drain is clogged with hair. It has to "
                            "be cleaned.", "The hair has to be cleaned.", "0")),
      "qnli": (["entailment", "not_entailment"], None),
  }
  for task, (labels, first_dev) in checks.items():
    p = rc.get_processor(task)
    assert p.get_labels() == labels
    dev = _examples(task, "dev")
    test = _examples(task, "test")
    assert dev and test
    assert all(e.label in labels for e in dev)
    assert all(e.label == labels[0] for e in test)
    if first_dev:
      e = dev[0]
      assert (e.guid, e.text_a, e.text_b, e.label) == first_dev
  del qqp_dir
  sts = rc.get_processor("sts-b")
  assert sts.get_labels() is None
  dev = _examples("sts-b", "dev")
  assert len(dev) == 1500
  assert (dev[0].text_a, dev[0].text_b, dev[0].label) == (
      "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.",
      "5.000")
  ax = rc.get_processor("ax")
  assert ax.get_labels() == rc.get_processor("mnli").get_labels()
  test = ax.get_test_examples(str(require(GLUE / "diagnostic")))
  assert len(test) == 1104 and test[0].guid == "test-0"
  with pytest.raises(ValueError, match="no training set"):
    ax.get_train_examples(str(GLUE / "diagnostic"))


def test_qqp_processor(tmp_path):
  _write(tmp_path / "train.tsv",
         "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
         "5\t1\t2\tHow do I learn?\tHow can I learn?\t1\n")
  _write(tmp_path / "test.tsv", "id\tquestion1\tquestion2\n"
         "0\tWhy \"this\"?\tWhy that?\n")
  p = rc.get_processor("qqp")
  [e] = p.get_train_examples(str(tmp_path))
  assert (e.guid, e.text_a, e.text_b, e.label) == (
      "train-1", "How do I learn?", "How can I learn?", "1")
  [t] = p.get_test_examples(str(tmp_path))
  assert (t.text_a, t.text_b, t.label) == ("Why \"this\"?", "Why that?", "0")


def test_bad_input_messages(tmp_path):
  p = rc.MrpcProcessor()
  header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
  _write(tmp_path / "train.tsv", header + "1\t1\t2\ta\tb\n1\t3\t4\tonly four\n")
  with pytest.raises(ValueError, match=r"train.tsv: line 3: expected 5 "
                     r"TAB-separated columns .* found 4"):
    p.get_train_examples(str(tmp_path))
  _write(tmp_path / "train.tsv", header + "1\t1\t2\ta\tb\nyes\t3\t4\tc\td\n")
  with pytest.raises(ValueError, match=r"train.tsv: line 3: label 'yes' is not "
                     r"one of the task's labels \['0', '1'\]"):
    p.get_train_examples(str(tmp_path))
  _write(tmp_path / "train.tsv", (header + "1\t1\t2\ta\tb\n").encode() +
         b"0\t3\t4\tcaf\xe9\td\n", mode="wb")
  with pytest.raises(ValueError, match=r"train.tsv: line 3: not valid UTF-8 "
                     r"\(byte 0xe9"):
    p.get_train_examples(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="dev.tsv"):
    p.get_dev_examples(str(tmp_path))
  with pytest.raises(ValueError, match="Task not found: nope"):
    rc.get_processor("nope")
  with pytest.raises(ValueError, match="example x: label '7' is not one of"):
    rc.convert_single_example(0, rc.InputExample("x", "a", None, "7"),
                              ["0", "1"], 8, None)


def test_read_tsv_quirks(tmp_path):
  # UTF-8 whatever the locale, \r dropped, quotes kept, BOM kept in field 0.
  _write(tmp_path / "x.tsv", "\ufeffa\t\"b\r\nc\"\td\r\n".encode("utf-8"),
         mode="wb")
  assert rc.DataProcessor._read_tsv(str(tmp_path / "x.tsv")) == [
      ["\ufeffa", "\"b"], ["c\"", "d"]]


# ----------------------------------------------------------------------------
# Model: the classifier head against the original's create_model.
# ----------------------------------------------------------------------------


def test_classifier_head_matches_reference():
  import checkpoints
  import modeling
  ckpt = require(MODEL_REF / "minilm_ckpt")
  config = modeling.BertConfig.from_json_file(str(ckpt / "bert_config.json"))
  inputs = np.load(require(MODEL_REF / "classifier" / "inputs.npz"))
  head = np.load(MODEL_REF / "classifier" / "head.npz")
  want = np.load(MODEL_REF / "classifier" / "outputs.npz")

  model = rc.ClassifierModel(config, num_labels=2)
  names = list(model.named_variables())
  assert names[-2:] == ["output_weights", "output_bias"]
  assert model.output_weights.shape == (2, 384)
  # Head init: truncated normal stddev 0.02 (within 2 stddev), zero bias.
  w = model.output_weights.numpy()
  assert np.abs(w).max() <= 0.04 + 1e-6 and 0.01 < w.std() < 0.03
  assert not model.output_bias.numpy().any()

  report = checkpoints.init_from_checkpoint(model.named_variables(),
                                            str(ckpt / "bert_model.ckpt"),
                                            log=False)
  assert set(report.missing) == {"output_weights", "output_bias"}
  model.output_weights.assign(head["output_weights"])
  model.output_bias.assign(head["output_bias"])

  loss, per_example_loss, logits, probabilities = rc.create_model(
      config, False, inputs["input_ids"], inputs["input_mask"],
      inputs["segment_ids"], inputs["label_ids"], 2, False, model=model)
  np.testing.assert_allclose(logits.numpy(), want["logits"], atol=1e-5)
  np.testing.assert_allclose(probabilities.numpy(), want["probabilities"],
                             atol=1e-6)
  np.testing.assert_allclose(per_example_loss.numpy(), want["per_example_loss"],
                             atol=1e-5)
  np.testing.assert_allclose(loss.numpy(), want["loss"], atol=1e-6)

  task = rc.ClassifierTask(config, ["0", "1"])
  features = {k: tf.constant(inputs[k]) for k in inputs.files}
  metrics = task.eval_metrics(model, features)
  num, den = metrics["eval_loss"]
  np.testing.assert_allclose(num.numpy() / den.numpy(), want["loss"], atol=1e-6)
  acc = np.mean(np.argmax(want["logits"], -1) == inputs["label_ids"])
  num, den = metrics["eval_accuracy"]
  assert num.numpy() / den.numpy() == pytest.approx(acc)
  np.testing.assert_allclose(task.predict(model, features)["probabilities"],
                             want["probabilities"], atol=1e-6)
  # Padding examples do not count in eval_accuracy / eval_loss.
  features["is_real_example"] = tf.constant([1, 1, 0, 0])
  num, den = task.eval_metrics(model, features)["eval_loss"]
  assert den.numpy() == 2.0
  np.testing.assert_allclose(num.numpy() / 2.0,
                             want["per_example_loss"][:2].mean(), atol=1e-5)
  # Training applies dropout 0.1 on the pooled output: logits change.
  train_logits = model.logits(features["input_ids"], features["input_mask"],
                              features["segment_ids"], training=True)
  assert np.abs(train_logits.numpy() - want["logits"]).max() > 1e-4


def test_regression_head_and_metrics():
  labels = tf.constant([1.0, 2.0, 4.0])
  logits = tf.constant([[1.5], [2.0], [3.0]])
  loss, per_example, predictions = rc.classifier_loss(logits, labels, 1, True)
  np.testing.assert_allclose(per_example.numpy(), [0.25, 0.0, 1.0])
  assert loss.numpy() == pytest.approx(1.25 / 3)
  np.testing.assert_allclose(predictions.numpy(), [1.5, 2.0, 3.0])
  x = np.array([1.0, 2.0, 3.0, 4.0, 4.0])
  y = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
  xm, ym = x - x.mean(), y - y.mean()
  assert rc.pearson(x, y) == pytest.approx(
      (xm * ym).sum() / np.sqrt((xm * xm).sum() * (ym * ym).sum()))
  np.testing.assert_allclose(rc._ranks(x), [1, 2, 3, 4.5, 4.5])
  assert rc.spearman(x, y) == pytest.approx(rc.pearson(rc._ranks(x),
                                                       rc._ranks(y)))
  assert rc.binary_f1([1, 0, 1, 1], [1, 1, 0, 1])[0] == pytest.approx(2 / 3)
  assert rc.matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
