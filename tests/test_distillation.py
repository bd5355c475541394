"""Knowledge distillation in run_classifier.py (issue 19).

The soft loss against numpy (classification with a temperature, regression),
alpha = 0 against ordinary fine-tuning, the frozen teacher (never updated,
never saved), the teacher predictions file and its alignment, the transfer
set reader, and the 24 small-BERT configs. (Layer selection for a student,
`convert_checkpoint.py --keep_layers`, is tested in test_convert_checkpoint.)
"""
import json
import os

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from conftest import DATA, REFERENCE, ROOT, require

import checkpoints
import common
import distillation as kd
import modeling
import run_classifier as rc
import runner

FLAGS = flags.FLAGS
MRPC = DATA / "glue" / "MRPC"
VOCAB = REFERENCE / "data" / "vocab.txt"

TINY = dict(
    attention_probs_dropout_prob=0.1, hidden_act="gelu",
    hidden_dropout_prob=0.1, hidden_size=32, initializer_range=0.02,
    intermediate_size=64, max_position_embeddings=64, num_attention_heads=2,
    num_hidden_layers=2, type_vocab_size=2, vocab_size=30522)
TEACHER = dict(TINY, num_hidden_layers=3, hidden_size=48,
               num_attention_heads=3, intermediate_size=96)


def _np_log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_distillation_loss_classification_against_numpy():
  rng = np.random.RandomState(0)
  student = rng.randn(5, 3).astype(np.float32) * 2
  teacher = rng.randn(5, 3).astype(np.float32) * 3
  for temperature in (1.0, 2.5):
    p_t = np.exp(_np_log_softmax(teacher.astype(np.float64) / temperature))
    log_s = _np_log_softmax(student.astype(np.float64) / temperature)
    expected = temperature ** 2 * (p_t * (np.log(p_t) - log_s)).sum(-1)
    targets = kd.soft_targets(tf.constant(teacher), temperature)
    got = kd.distillation_loss(tf.constant(student), targets, temperature)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    # The teacher's probabilities (a predictions file) give the same targets
    # as its logits.
    from_probs = kd.soft_targets(
        tf.math.log(tf.nn.softmax(tf.constant(teacher))), temperature)
    np.testing.assert_allclose(from_probs.numpy(), targets.numpy(),
                               rtol=1e-5, atol=1e-7)
  # A student equal to the teacher has zero loss.
  same = kd.distillation_loss(tf.constant(teacher),
                              kd.soft_targets(tf.constant(teacher), 2.0), 2.0)
  np.testing.assert_allclose(same.numpy(), 0.0, atol=1e-5)


def test_distillation_loss_regression_against_numpy():
  student = np.array([[0.5], [2.0], [-1.0]], np.float32)
  teacher = np.array([1.0, 2.0, 3.0], np.float32)
  got = kd.distillation_loss(tf.constant(student), tf.constant(teacher), 3.0,
                             regression=True)
  np.testing.assert_allclose(got.numpy(), (student[:, 0] - teacher) ** 2)


def _features(rng, batch=6, seq=12, num_labels=2, regression=False):
  mask = np.ones([batch, seq], np.int32)
  mask[:, 8:] = 0
  return {
      "input_ids": tf.constant(rng.randint(1, 30000, [batch, seq]), tf.int32),
      "input_mask": tf.constant(mask),
      "segment_ids": tf.constant(np.zeros([batch, seq], np.int32)),
      "label_ids": (tf.constant(rng.rand(batch) * 5, tf.float32) if regression
                    else tf.constant(rng.randint(0, num_labels, [batch]),
                                     tf.int32)),
      "is_real_example": tf.ones([batch], tf.int32),
  }


@pytest.mark.parametrize("regression", [False, True])
def test_alpha_zero_is_ordinary_fine_tuning(regression):
  config = modeling.BertConfig.from_dict(TINY)
  labels = None if regression else ["0", "1"]
  plain = rc.ClassifierTask(config, labels)
  distill = kd.DistillationTask(config, labels, alpha=0.0)
  tf.random.set_seed(3)
  model = plain.create_model()
  features = _features(np.random.RandomState(1), regression=regression)
  expected, _ = plain.compute_loss(model, features, False)
  got, logs = distill.compute_loss(model, features, False)
  assert got.numpy() == expected.numpy()
  features["has_label"] = tf.ones([6], tf.int32)
  got, _ = distill.compute_loss(model, features, False)
  np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-7)
  assert "distill_loss" not in logs


def test_mixed_loss_from_predictions_file_against_numpy():
  """alpha * T^2 KL(teacher || student) + (1 - alpha) * gold CE (labeled)."""
  config = modeling.BertConfig.from_dict(TINY)
  rng = np.random.RandomState(2)
  task = kd.DistillationTask(config, ["a", "b", "c"], alpha=0.3,
                             temperature=2.0)
  model = task.create_model()
  assert task.teacher is None
  features = _features(rng, num_labels=3)
  probs = rng.dirichlet([1, 1, 1], size=6).astype(np.float32)
  has_label = np.array([1, 0, 1, 1, 0, 0], np.int32)
  features["teacher_targets"] = tf.constant(probs)
  features["has_label"] = tf.constant(has_label)
  loss, logs = task.compute_loss(model, features, False)
  logits = model.logits(features["input_ids"], features["input_mask"],
                        features["segment_ids"]).numpy().astype(np.float64)
  p_t = np.exp(_np_log_softmax(np.log(probs.astype(np.float64)) / 2.0))
  soft = 4.0 * (p_t * (np.log(p_t) - _np_log_softmax(logits / 2.0))).sum(-1)
  gold = -_np_log_softmax(logits)[np.arange(6),
                                  features["label_ids"].numpy()]
  expected_gold = (gold * has_label).sum() / has_label.sum()
  np.testing.assert_allclose(logs["distill_loss"].numpy(), soft.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(logs["gold_loss"].numpy(), expected_gold,
                             rtol=1e-5)
  np.testing.assert_allclose(loss.numpy(),
                             0.3 * soft.mean() + 0.7 * expected_gold,
                             rtol=1e-5)


def test_bad_alpha_and_temperature():
  config = modeling.BertConfig.from_dict(TINY)
  with pytest.raises(common.UserError, match="distill_alpha"):
    kd.DistillationTask(config, ["0", "1"], alpha=1.5)
  with pytest.raises(common.UserError, match="distill_temperature"):
    kd.DistillationTask(config, ["0", "1"], temperature=0.0)


# ----------------------------------------------------------------------------
# The in-step teacher.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
  """A tiny fine-tuned-classifier-style teacher checkpoint (random weights,
  head included) and one without the head."""
  root = tmp_path_factory.mktemp("teacher")
  config = modeling.BertConfig.from_dict(TEACHER)
  (root / "bert_config.json").write_text(json.dumps(TEACHER))
  tf.random.set_seed(7)
  model = rc.ClassifierModel(config, 2)
  arrays = {n: v.numpy() for n, v in model.named_variables().items()}
  # A sharper head so that the teacher's distribution is not uniform.
  arrays["output_weights"] = arrays["output_weights"] * 50
  checkpoints.save_bundle(str(root / "teacher.ckpt"), arrays)
  headless = {n: a for n, a in arrays.items() if not n.startswith("output_")}
  checkpoints.save_bundle(str(root / "headless.ckpt"), headless)
  return root


def _input_fn(params):
  rng = np.random.RandomState(0)
  features = _features(rng, batch=16)
  features["has_label"] = tf.constant([1, 0] * 8, tf.int32)
  return tf.data.Dataset.from_tensor_slices(
      {k: v for k, v in features.items()}).repeat().batch(params["batch_size"])


def test_teacher_frozen_and_not_in_student_state(teacher, tmp_path):
  config = modeling.BertConfig.from_dict(TINY)
  task = kd.DistillationTask(
      config, ["0", "1"], alpha=0.5, temperature=2.0,
      teacher_config=modeling.BertConfig.from_dict(TEACHER),
      teacher_checkpoint=str(teacher / "teacher.ckpt"))
  cfg = runner.RunConfig(str(tmp_path), seed=1)
  trainer = runner.build_trainer(cfg, task, 1e-2, 10, 0, train_batch_size=8)
  student_names = set(trainer.state.named_weights)
  plain_names = set(rc.ClassifierModel(config, 2).named_variables())
  assert student_names == plain_names
  assert set(trainer.state.named_state()) == (
      plain_names | {n + s for n in plain_names for s in ("/adam_m", "/adam_v")}
      | {"global_step"})
  assert task.teacher is not None
  assert not task.teacher.trainable_variables
  before = {n: v.numpy().copy()
            for n, v in trainer.model.named_variables().items()}
  logs = trainer.run_steps(trainer.make_iterator(_input_fn), 3)
  assert {"distill_loss", "gold_loss", "loss"} <= set(logs)
  saved = checkpoints.read_tensors(str(teacher / "teacher.ckpt"))
  for name, var in task.teacher.named_variables().items():
    assert np.array_equal(var.numpy(), saved[name]), name
  changed = [n for n, v in trainer.model.named_variables().items()
             if not np.array_equal(v.numpy(), before[n])]
  assert "output_weights" in changed and len(changed) > 10


def test_teacher_without_head_is_refused(teacher):
  task = kd.DistillationTask(
      modeling.BertConfig.from_dict(TINY), ["0", "1"],
      teacher_config=modeling.BertConfig.from_dict(TEACHER),
      teacher_checkpoint=str(teacher / "headless.ckpt"))
  with pytest.raises(common.UserError,
                     match="teacher_init_checkpoint.*no classifier head"):
    task.create_model()


# ----------------------------------------------------------------------------
# The script: transfer set, teacher predictions file, student checkpoint.
# ----------------------------------------------------------------------------


def _head(path, n):
  with open(path, encoding="utf-8") as f:
    return [next(f) for _ in range(n)]


def run_main(argv):
  rc.define_flags()
  FLAGS.unparse_flags()
  FLAGS(["run_classifier.py"] + argv)
  try:
    rc.main([])
  finally:
    FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, teacher):
  require(MRPC)
  require(VOCAB)
  root = tmp_path_factory.mktemp("distill")
  (root / "bert_config.json").write_text(json.dumps(TINY))
  data = root / "mrpc"
  data.mkdir()
  for name, rows in (("train", 9), ("dev", 5)):
    (data / (name + ".tsv")).write_text(
        "".join(_head(MRPC / (name + ".tsv"), rows + 1)), encoding="utf-8")
  transfer = root / "transfer"
  transfer.mkdir()
  # MRPC's layout; a label column of placeholders, ignored.
  (transfer / "train.tsv").write_text(
      "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" +
      "".join("-\t%d\t%d\tthe cat sat number %d .\ta cat sat .\n" % (i, i, i)
              for i in range(7)), encoding="utf-8")
  return root


def _flags(workdir, output_dir, **extra):
  argv = ["--task_name=mrpc", "--data_dir=%s" % (workdir / "mrpc"),
          "--vocab_file=%s" % VOCAB,
          "--bert_config_file=%s" % (workdir / "bert_config.json"),
          "--output_dir=%s" % output_dir, "--max_seq_length=16",
          "--train_batch_size=4", "--eval_batch_size=4",
          "--predict_batch_size=4", "--learning_rate=1e-3",
          "--num_train_epochs=1", "--log_steps=1", "--seed=1"]
  return argv + ["--%s=%s" % kv for kv in extra.items()]


def test_transfer_examples_ignore_labels(workdir):
  examples = rc.MrpcProcessor().get_transfer_examples(
      str(workdir / "transfer"))
  assert len(examples) == 7 and all(e.label is None for e in examples)
  assert examples[0].text_b == "a cat sat ."
  # A single-sentence task's transfer file may lack the label column.
  sst = workdir / "sst"
  sst.mkdir(exist_ok=True)
  (sst / "train.tsv").write_text("sentence\nfine film\nbad film\n")
  examples = rc.Sst2Processor().get_transfer_examples(str(sst))
  assert [e.text_a for e in examples] == ["fine film", "bad film"]


def test_script_teacher_checkpoint_and_predictions_file(workdir, teacher):
  # 1. The teacher's probabilities on the transfer set (9 train + 7 transfer).
  teacher_out = workdir / "teacher_out"
  run_main(_flags(workdir, teacher_out, do_predict="true",
                  predict_transfer_set="true",
                  bert_config_file=teacher / "bert_config.json",
                  init_checkpoint=teacher / "teacher.ckpt",
                  transfer_data_dir=workdir / "transfer"))
  rows = (teacher_out / "transfer_results.tsv").read_text().splitlines()
  assert len(rows) == 16
  probs = np.array([[float(x) for x in r.split("\t")] for r in rows])
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)

  # 2. A student from the in-step teacher and from the file: the student's
  # checkpoint holds the plain classifier (+ Adam slots, global_step).
  for name, extra in (
      ("in_step", dict(teacher_bert_config_file=teacher / "bert_config.json",
                       teacher_init_checkpoint=teacher / "teacher.ckpt",
                       distill_alpha=0.5, distill_temperature=2.0)),
      ("from_file", dict(teacher_predictions_file=teacher_out /
                         "transfer_results.tsv"))):
    out = workdir / ("student_" + name)
    run_main(_flags(workdir, out, do_train="true", do_eval="true",
                    transfer_data_dir=workdir / "transfer", **extra))
    ckpt = tf.train.latest_checkpoint(str(out))
    assert ckpt.endswith("model.ckpt-4")  # int(16 / 4)
    names = {n for n, _ in tf.train.list_variables(ckpt)}
    plain = set(rc.ClassifierModel(modeling.BertConfig.from_dict(TINY),
                                   2).named_variables())
    assert names == plain | {n + s for n in plain
                             for s in ("/adam_m", "/adam_v")} | {"global_step"}
    results = (out / "eval_results.txt").read_text()
    assert "eval_accuracy" in results
  # The training records are shuffled (--seed=1), each with its own teacher
  # row and has_label (the 9 training rows come first in the transfer set).
  order = np.random.RandomState(1).permutation(16)
  assert list(order[:9]) != list(range(9))
  records = list(tf.data.TFRecordDataset(
      str(workdir / "student_from_file" / "train.tf_record")))
  assert len(records) == 16
  for n, record in enumerate(records):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    assert feature["has_label"].int64_list.value == [int(order[n] < 9)]
    np.testing.assert_allclose(feature["teacher_targets"].float_list.value,
                               probs[order[n]], rtol=1e-6)


def test_predictions_file_row_count_mismatch(workdir, tmp_path):
  short = tmp_path / "short.tsv"
  short.write_text("0.5\t0.5\n" * 15)
  with pytest.raises(common.UserError,
                     match="has 15 rows but the transfer set has 16"):
    run_main(_flags(workdir, tmp_path / "out", do_train="true",
                    transfer_data_dir=workdir / "transfer",
                    teacher_predictions_file=short))
  assert not (tmp_path / "out" / "train.tf_record").exists()
  bad = tmp_path / "bad.tsv"
  bad.write_text("0.5\t0.5\n" * 8 + "0.5\n" + "0.5\t0.5\n" * 7)
  with pytest.raises(common.UserError, match="line 9: expected 2"):
    run_main(_flags(workdir, tmp_path / "out", do_train="true",
                    transfer_data_dir=workdir / "transfer",
                    teacher_predictions_file=bad))


def test_small_bert_configs():
  folder = ROOT / "configs" / "small_bert"
  names = sorted(p.name for p in folder.glob("*.json"))
  expected = sorted("bert_config_L-%d_H-%d_A-%d.json" % (l, h, h // 64)
                    for l in (2, 4, 6, 8, 10, 12) for h in (128, 256, 512, 768))
  assert names == expected
  for name in names:
    config = modeling.BertConfig.from_json_file(str(folder / name))
    parts = name[len("bert_config_"):-len(".json")].split("_")
    l, h = int(parts[0][2:]), int(parts[1][2:])
    assert config.num_hidden_layers == l and config.hidden_size == h
    assert config.num_attention_heads == h // 64
    assert config.intermediate_size == 4 * h
    assert (config.vocab_size, config.max_position_embeddings,
            config.type_vocab_size) == (30522, 512, 2)
    assert config.hidden_act == "gelu" and config.initializer_range == 0.02
    assert config.hidden_dropout_prob == 0.1


def test_make_transfer_set(tmp_path):
  """STS-B and RTE pairs, shuffled, without MRPC's own pairs."""
  glue = tmp_path / "glue"
  for folder, header, rows in (
      ("STS-B", "i\tg\tf\ty\to\ts1\ts2\tsentence1\tsentence2\tscore",
       ["0\tg\tf\ty\to\tn\tn\tA dog runs.\tA dog is running.\t4.2",
        "1\tg\tf\ty\to\tn\tn\tSame one.\tSame two.\t1.0"]),
      ("RTE", "index\tsentence1\tsentence2\tlabel",
       ["0\tPremise here.\tHypothesis.\tentailment"]),
      ("MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
       ["1\t1\t2\tSame two.\tSame one.\n"])):
    (glue / folder).mkdir(parents=True)
    (glue / folder / "train.tsv").write_text(
        "\n".join([header] + rows) + "\n", encoding="utf-8")
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "make_transfer_set", ROOT / "tools" / "make_transfer_set.py")
  tool = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tool)
  pairs = tool.build(str(glue), 0, seed=1)
  assert sorted(pairs) == [("A dog runs.", "A dog is running."),
                           ("Premise here.", "Hypothesis.")]
  assert tool.build(str(glue), 1, seed=1) == pairs[:1]
