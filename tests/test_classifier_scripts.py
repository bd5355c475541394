"""run_classifier.py end to end on every GLUE task (tiny model, tiny data).

The scripts run in-process through their `main` with absl flags, on small
copies of ../shared/data/glue written by the tests.
"""
import json
import os

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from conftest import DATA, REFERENCE, require

import run_classifier as rc
import runner

FLAGS = flags.FLAGS
GLUE = DATA / "glue"
VOCAB = REFERENCE / "data" / "vocab.txt"

TINY_CONFIG = dict(
    attention_probs_dropout_prob=0.1, hidden_act="gelu",
    hidden_dropout_prob=0.1, hidden_size=32, initializer_range=0.02,
    intermediate_size=64, max_position_embeddings=64, num_attention_heads=2,
    num_hidden_layers=2, type_vocab_size=2, vocab_size=30522)

# task -> (GLUE folder, files, labels or None)
TASKS = {
    "cola": ("CoLA", ("train", "dev", "test")),
    "mrpc": ("MRPC", ("train", "dev", "test")),
    "sst-2": ("SST-2", ("train", "dev", "test")),
    "qnli": ("QNLI", ("dev", "test")),
    "rte": ("RTE", ("train", "dev", "test")),
    "sts-b": ("STS-B", ("train", "dev", "test")),
    "wnli": ("WNLI", ("train", "dev", "test")),
}
ROWS = {"train": 17, "dev": 7, "test": 5}


def _head(path, n):
  with open(path, encoding="utf-8") as f:
    return [next(f) for _ in range(n)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """Tiny config plus tiny copies of each GLUE task."""
  require(GLUE)
  require(VOCAB)
  root = tmp_path_factory.mktemp("glue_e2e")
  (root / "bert_config.json").write_text(json.dumps(TINY_CONFIG))
  for task, (folder, files) in TASKS.items():
    out = root / "data" / folder
    out.mkdir(parents=True)
    for name in files:
      # CoLA train/dev have no header.
      headerless = task == "cola" and name != "test"
      lines = _head(GLUE / folder / (name + ".tsv"),
                    ROWS[name] + (0 if headerless else 1))
      (out / (name + ".tsv")).write_text("".join(lines), encoding="utf-8")
    if task == "qnli":  # QNLI train.tsv is not in ../shared: reuse dev rows.
      lines = _head(GLUE / folder / "dev.tsv", ROWS["train"] + 1)
      (out / "train.tsv").write_text("".join(lines), encoding="utf-8")
  ax = root / "data" / "diagnostic"
  ax.mkdir()
  (ax / "diagnostic.tsv").write_text(
      "".join(_head(GLUE / "diagnostic" / "diagnostic.tsv", 6)),
      encoding="utf-8")
  mnli = root / "data" / "MNLI"
  mnli.mkdir()
  header = ("index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\t"
            "sentence2\tlabel1\tgold_label\n")
  rows = [("The cat sat on the mat.", "A cat sat.", "entailment"),
          ("The cat sat on the mat.", "No cat sat.", "contradiction"),
          ("He went home.", "He was tired.", "neutral"),
          ("It is raining.", "It is wet outside.", "entailment")]
  text = header + "".join("%d\t0\t0\tg\tb\tb\tp\tp\t%s\t%s\t%s\t%s\n" %
                          (i, a, b, l, l) for i, (a, b, l) in
                          enumerate(rows * 4))
  (mnli / "train.tsv").write_text(text, encoding="utf-8")
  (mnli / "dev_matched.tsv").write_text(text, encoding="utf-8")
  return root


def run_main(argv, main=None):
  """Parses `argv` into the global FLAGS and runs the script's main."""
  rc.define_flags()
  FLAGS.unparse_flags()
  FLAGS(["run_classifier.py"] + argv)
  try:
    (main or rc.main)([])
  finally:
    FLAGS.unparse_flags()


def _base_flags(workdir, task, output_dir, **extra):
  folder = TASKS[task][0] if task in TASKS else {"mnli": "MNLI",
                                                 "ax": "diagnostic"}[task]
  argv = ["--task_name=%s" % task,
          "--data_dir=%s" % (workdir / "data" / folder),
          "--vocab_file=%s" % VOCAB,
          "--bert_config_file=%s" % (workdir / "bert_config.json"),
          "--output_dir=%s" % output_dir,
          "--max_seq_length=16", "--train_batch_size=8",
          "--eval_batch_size=4", "--predict_batch_size=4",
          "--learning_rate=1e-3", "--num_train_epochs=1", "--log_steps=1",
          "--seed=1"]
  argv += ["--%s=%s" % kv for kv in extra.items()]
  return argv


def _read_kv(path):
  out = {}
  for line in open(path, encoding="utf-8"):
    key, value = line.rstrip("\n").split(" = ")
    out[key] = value
  return out


def _check_outputs(output_dir, task, label_list, num_test):
  files = set(os.listdir(output_dir))
  assert {"train.tf_record", "eval.tf_record", "predict.tf_record",
          "eval_results.txt", "test_results.tsv",
          "test_predictions.tsv"} <= files
  assert not [f for f in files if ".tmp" in f]
  results = _read_kv(os.path.join(output_dir, "eval_results.txt"))
  if label_list is None:
    assert sorted(results) == ["eval_loss", "eval_pearson", "eval_spearman",
                               "global_step", "loss"]
  else:
    assert sorted(results) == ["eval_accuracy", "eval_loss", "global_step",
                               "loss"]
    assert 0.0 <= float(results["eval_accuracy"]) <= 1.0
  assert int(results["global_step"]) == 2  # int(17 / 8 * 1.0)
  for key, value in results.items():
    assert np.isfinite(float(value)), (task, key, value)
  width = 1 if label_list is None else len(label_list)
  lines = open(os.path.join(output_dir, "test_results.tsv")).read().splitlines()
  assert len(lines) == num_test
  for line in lines:
    values = [float(v) for v in line.split("\t")]
    assert len(values) == width
    if label_list is not None:
      assert abs(sum(values) - 1.0) < 1e-5
  rows = [l.split("\t") for l in open(
      os.path.join(output_dir, "test_predictions.tsv")).read().splitlines()]
  if label_list is None:
    assert rows[0] == ["guid", "prediction"]
  else:
    assert rows[0] == ["guid", "predicted_label"] + [
        "probability_%s" % l for l in label_list]
    for row, line in zip(rows[1:], lines):
      assert row[2:] == line.split("\t")
      probs = [float(v) for v in row[2:]]
      assert row[1] == label_list[int(np.argmax(probs))]
  assert len(rows) == num_test + 1
  assert len(set(r[0] for r in rows[1:])) == num_test


@pytest.mark.parametrize("task", sorted(TASKS))
def test_glue_task_train_eval_predict(task, workdir):
  output_dir = workdir / ("out_" + task)
  extra = {}
  if task == "sts-b":
    # Also: evaluation every step and the best checkpoint (by eval_loss).
    extra = dict(eval_every_n_steps=1, best_metric="eval_loss")
  if task == "mrpc":
    # The XLA-fused attention core and GELU through the whole script
    # (training with dropout, eval and predict).
    extra = dict(fused_blocks="true")
  run_main(_base_flags(workdir, task, output_dir, do_train="true",
                       do_eval="true", do_predict="true", **extra))
  label_list = rc.get_processor(task).get_labels()
  _check_outputs(str(output_dir), task, label_list, ROWS["test"])
  ckpt = tf.train.list_variables(tf.train.latest_checkpoint(str(output_dir)))
  names = {n for n, _ in ckpt}
  assert {"output_weights", "output_bias", "global_step",
          "output_weights/adam_m"} <= names
  assert dict(ckpt)["output_weights"] == [1 if label_list is None else
                                          len(label_list), 32]
  eval_rows = open(output_dir / "eval_predictions.tsv").read().splitlines()
  assert len(eval_rows) == ROWS["dev"] + 1
  if task == "sts-b":
    _check_best(output_dir)
  if task == "sst-2":
    _check_dynamic_padding(workdir, output_dir)


def _check_dynamic_padding(workdir, output_dir):
  """--dynamic_padding predicts the fixed-length probabilities, in order.

  Both predict-only runs restore the trained checkpoint; at
  max_seq_length 64 the short SST-2 test sentences fall into shorter buckets.
  """
  tables = []
  for dynamic in ("false", "true"):
    run_main(_base_flags(workdir, "sst-2", output_dir, do_train="false",
                         do_eval="false", do_predict="true",
                         max_seq_length=64, dynamic_padding=dynamic))
    with open(output_dir / "test_results.tsv", encoding="utf-8") as f:
      tables.append(np.array([[float(v) for v in line.split("\t")]
                              for line in f.read().splitlines()]))
  fixed, dynamic = tables
  assert fixed.shape == (ROWS["test"], 2)
  assert np.abs(fixed - dynamic).max() <= 1e-5


def _check_best(output_dir):
  history = open(output_dir / "eval_history.tsv").read().splitlines()
  assert history[0].split("\t")[0] == "global_step"
  assert [h.split("\t")[0] for h in history[1:]] == ["1", "2"]
  column = history[0].split("\t").index("eval_loss")
  losses = [float(h.split("\t")[column]) for h in history[1:]]
  best_step = 1 + int(np.argmin(losses))
  best = tf.train.latest_checkpoint(str(output_dir / "best"))
  assert best.endswith("model.ckpt-%d" % best_step)
  best_results = _read_kv(output_dir / "best" / "eval_results.txt")
  assert int(best_results["global_step"]) == best_step
  assert float(best_results["eval_loss"]) == pytest.approx(min(losses),
                                                           rel=1e-5)
  names = {n for n, _ in tf.train.list_variables(best)}
  assert "output_weights" in names and "global_step" in names


def test_mnli_then_ax_and_head_refusal(workdir):
  mnli_out = workdir / "out_mnli"
  run_main(_base_flags(workdir, "mnli", mnli_out, do_train="true",
                       do_eval="true"))
  results = _read_kv(mnli_out / "eval_results.txt")
  assert sorted(results) == ["eval_accuracy", "eval_loss", "global_step", "loss"]
  ckpt = tf.train.latest_checkpoint(str(mnli_out))
  ax_out = workdir / "out_ax"
  run_main(_base_flags(workdir, "ax", ax_out, do_predict="true",
                       init_checkpoint=ckpt))
  lines = open(ax_out / "test_results.tsv").read().splitlines()
  assert len(lines) == 5 and all(len(l.split("\t")) == 3 for l in lines)
  header = open(ax_out / "test_predictions.tsv").readline().split()
  assert header == ["guid", "predicted_label", "probability_contradiction",
                    "probability_entailment", "probability_neutral"]

  # A pre-trained checkpoint without the classifier head (#1037).
  import checkpoints
  import modeling
  bert = modeling.BertModel(modeling.BertConfig.from_dict(TINY_CONFIG))
  pre = checkpoints.save(str(workdir / "pretrained"), 0, bert.named_variables())
  refused_out = workdir / "out_refused"
  with pytest.raises(runner.UserError, match="no classifier head .*"
                     "--allow_untrained_head"):
    run_main(_base_flags(workdir, "mrpc", refused_out, do_eval="true",
                         init_checkpoint=pre))
  run_main(_base_flags(workdir, "mrpc", refused_out, do_eval="true",
                       init_checkpoint=pre, allow_untrained_head="true"))
  assert (refused_out / "eval_results.txt").exists()


def test_flag_errors(workdir, tmp_path):
  with pytest.raises(ValueError, match="max_position_embeddings"):
    run_main(_base_flags(workdir, "mrpc", tmp_path / "o", do_train="true",
                         max_seq_length=128))
  with pytest.raises(ValueError, match="Task not found: nope"):
    run_main(_base_flags(workdir, "mrpc", tmp_path / "o", do_train="true",
                         task_name="nope"))
  with pytest.raises(ValueError, match="At least one of"):
    run_main(_base_flags(workdir, "mrpc", tmp_path / "o"))
  with pytest.raises(ValueError, match="do_lower_case"):
    run_main(_base_flags(workdir, "mrpc", tmp_path / "o", do_train="true",
                         init_checkpoint="/x/cased_L-12_H-768_A-12/"
                         "bert_model.ckpt"))
