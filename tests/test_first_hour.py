"""A new user's first hour (issue 20): no hangs, one-line errors, no silent mistakes.

Most cases raise `common.UserError` (or ValueError) in-process: `main_wrapper`
turns those into one `ERROR:` line and exit 1 (tested once here). Subprocesses
only where the exit path itself is the point: an empty corpus, an input
without records (a hang before), the output directory check before work,
and `--help`.
"""
import json
import os
import re
import subprocess
import sys

from absl import logging as absl_logging
import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, ROOT, require

import checkpoints
import common
import extract_features
import modeling
import runner
import runner_toy
import tokenization

MINILM = REFERENCE / "model" / "minilm_ckpt"
SAMPLE = ROOT / "sample_text.txt"

TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
    "intermediate_size": 64, "max_position_embeddings": 64,
    "num_attention_heads": 2, "num_hidden_layers": 2, "type_vocab_size": 2,
    "vocab_size": 30}

VOCAB_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of",
               "and", ".", ","]


def _env():
  env = dict(os.environ)
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # What a user gets by default.
  env["PYTHONPATH"] = str(ROOT)
  return env


def _run(args, cwd, timeout=240):
  return subprocess.run([sys.executable] + [str(a) for a in args], cwd=cwd,
                        capture_output=True, text=True, timeout=timeout,
                        env=_env())


def _errors(proc):
  return [l for l in proc.stderr.splitlines() if l.startswith("ERROR:")]


def _own_first(proc):
  """The first stderr line is the program's own (absl's I/W/E or ERROR:)."""
  first = proc.stderr.splitlines()[0]
  assert first.startswith(("I", "W", "ERROR:")) and ".py:" in first or \
      first.startswith("ERROR:"), first
  assert "cuInit" not in proc.stderr and "oneDNN" not in proc.stderr
  assert "InitializeLog" not in proc.stderr


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
  d = tmp_path_factory.mktemp("first_hour")
  vocab = d / "vocab.txt"
  words = VOCAB_WORDS + sorted(set(
      w.strip(".,").lower() for w in SAMPLE.read_text().split()))
  vocab.write_text("\n".join(dict.fromkeys(words)) + "\n")
  (d / "vocab11.txt").write_text("\n".join(VOCAB_WORDS) + "\n")
  (d / "empty.txt").write_text("")
  (d / "empty.tfrecord").write_bytes(b"")
  config = dict(TINY_CONFIG, vocab_size=len(vocab.read_text().splitlines()))
  (d / "bert_config.json").write_text(json.dumps(config))
  return d


@pytest.fixture(scope="module")
def records(files):
  """Pretraining data made by create_pretraining_data.py from sample_text.txt."""
  out = files / "sample.tfrecord"
  proc = _run([ROOT / "create_pretraining_data.py", "--input_file", SAMPLE,
               "--output_file", out, "--vocab_file", files / "vocab.txt",
               "--max_seq_length=32", "--max_predictions_per_seq=5",
               "--dupe_factor=2"], files)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return out


# ------------------------------------------------ 1. hangs and empty inputs


def test_empty_corpus_is_an_error_and_writes_nothing(files):
  out = files / "from_empty.tfrecord"
  proc = _run([ROOT / "create_pretraining_data.py", "--input_file",
               files / "empty.txt", "--output_file", out, "--vocab_file",
               files / "vocab.txt"], files)
  assert proc.returncode == 1
  errors = _errors(proc)
  assert len(errors) == 1 and "holds no text" in errors[0], proc.stderr
  assert "empty.txt" in errors[0]
  assert not out.exists()
  assert not [p for p in os.listdir(files) if p.startswith("from_empty")]


def test_output_file_that_is_a_directory_stops_before_the_work(files):
  target = files / "a_directory"
  target.mkdir()
  proc = _run([ROOT / "create_pretraining_data.py", "--input_file", SAMPLE,
               "--output_file", target, "--vocab_file", files / "vocab.txt"],
              files)
  assert proc.returncode == 1
  errors = _errors(proc)
  assert len(errors) == 1 and "is a directory" in errors[0], proc.stderr
  assert "Traceback" not in proc.stderr
  assert "Summary:" not in proc.stderr  # stopped before creating instances
  assert os.listdir(target) == []


def test_run_pretraining_on_a_file_without_records_stops_in_one_line(files):
  """Before: the repeated empty dataset spun at 100 % CPU for ever."""
  out = files / "rp_out"
  proc = _run([ROOT / "run_pretraining.py", "--input_file",
               files / "empty.tfrecord", "--bert_config_file",
               files / "bert_config.json", "--output_dir", out, "--do_train",
               "--train_batch_size=2", "--max_seq_length=32",
               "--max_predictions_per_seq=5", "--num_train_steps=2"], files)
  assert proc.returncode == 1
  errors = _errors(proc)
  assert len(errors) == 1 and "no records" in errors[0], proc.stderr
  assert "Traceback" not in proc.stderr
  _own_first(proc)
  assert not out.exists() or not os.listdir(out)


def test_check_tfrecords_counts_and_refuses_empty_or_truncated(files, records):
  count = runner.check_tfrecords([str(records)])
  assert count == sum(1 for _ in tf.data.TFRecordDataset(str(records)))
  assert count > 10
  with pytest.raises(common.UserError, match="no records"):
    runner.check_tfrecords([str(files / "empty.tfrecord")], "eval_input_file")
  truncated = files / "truncated.tfrecord"
  data = records.read_bytes()
  truncated.write_bytes(data[:len(data) - 50])
  with pytest.raises(common.UserError, match="truncated") as info:
    runner.check_tfrecords([str(truncated)])
  assert str(truncated) in str(info.value)
  assert "Op:" not in str(info.value) and "function_node" not in str(info.value)
  # One empty file beside a good one: a warning, the records still count.
  assert runner.check_tfrecords(
      [str(records), str(files / "empty.tfrecord")]) == count


def test_a_truncated_record_met_while_training_is_one_line(files, records,
                                                           tmp_path):
  """The runner's own guard (for inputs not checked beforehand)."""
  data = records.read_bytes()
  truncated = tmp_path / "t.tfrecord"
  truncated.write_bytes(data[:len(data) - 50])

  def input_fn(params):
    d = tf.data.TFRecordDataset(str(truncated)).map(
        lambda r: {"x": tf.ones([4]) * tf.cast(tf.strings.length(r), tf.float32)
                   * 0.0, "y": tf.constant(1.0), "id": tf.constant(0)})
    return d.repeat().batch(params["batch_size"], drop_remainder=True)

  cfg = runner.RunConfig(str(tmp_path / "out"), log_steps=1000,
                         save_checkpoints_steps=1000)
  with pytest.raises(common.UserError, match="truncated or corrupt") as info:
    runner.train(cfg, runner_toy.ToyTask(), input_fn, 200, 1, 0.1,
                 train_batch_size=4)
  assert "Op:" not in str(info.value) and "function_node" not in str(info.value)


# ------------------------------------------------ 2. one line, not a traceback


def test_bert_config_file_missing_wrong_or_incomplete(files, caplog):
  with pytest.raises(common.UserError, match="does not exist"):
    modeling.BertConfig.from_json_file(str(files / "nope.json"))
  with pytest.raises(common.UserError, match="is a directory"):
    modeling.BertConfig.from_json_file(str(files))
  config = dict(TINY_CONFIG)
  del config["num_attention_heads"]
  (files / "noheads.json").write_text(json.dumps(config))
  with pytest.raises(common.UserError,
                     match="noheads.json has no `num_attention_heads`"):
    modeling.BertConfig.from_json_file(str(files / "noheads.json"))
  # An unknown key is kept (as the original) and warned about, with a hint.
  (files / "typo.json").write_text(json.dumps(dict(TINY_CONFIG,
                                                   hidden_sizee=64)))
  caplog.set_level("WARNING")
  cfg = modeling.BertConfig.from_json_file(str(files / "typo.json"))
  assert cfg.hidden_sizee == 64 and cfg.hidden_size == 32
  warned = " ".join(r.getMessage() for r in caplog.records)
  assert "unknown key `hidden_sizee`" in warned
  assert "did you mean `hidden_size`" in warned
  # Released configs' extra keys (the Chinese model's pooler_*) are known.
  caplog.clear()
  (files / "zh.json").write_text(json.dumps(dict(
      TINY_CONFIG, pooler_type="first_token_transform", directionality="bidi")))
  modeling.BertConfig.from_json_file(str(files / "zh.json"))
  assert "unknown key" not in " ".join(r.getMessage() for r in caplog.records)


def test_output_dir_that_is_a_file_or_under_a_file(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(common.UserError, match="is a file, not a directory"):
    runner.prepare_output_dir(str(a_file))
  with pytest.raises(common.UserError, match="cannot create the directory"):
    runner.prepare_output_dir(str(a_file / "sub"))
  assert runner.prepare_output_dir(str(tmp_path / "new" / "dir"))
  assert (tmp_path / "new" / "dir").is_dir()


def test_training_flags_that_cannot_train(caplog):
  with pytest.raises(common.UserError, match="--train_batch_size=0"):
    runner.check_training_args(0, 1e-4, 10)
  with pytest.raises(common.UserError, match="gradient ascent"):
    runner.check_training_args(8, -1.0, 10)
  with pytest.raises(common.UserError, match="--num_train_steps=0"):
    runner.check_training_args(8, 1e-4, 0)
  with pytest.raises(common.UserError, match="lower the batch size"):
    runner.epoch_steps(3, 8, 1.0, 0.1)
  runner.check_training_args(8, 1e-4, 10)


def test_runner_train_refuses_a_negative_learning_rate(tmp_path):
  cfg = runner.RunConfig(str(tmp_path / "out"))
  with pytest.raises(common.UserError, match="--learning_rate=-1"):
    runner.train(cfg, runner_toy.ToyTask(), runner_toy.input_fn_builder(
        runner_toy.make_data(), True), 5, 1, -1.0, train_batch_size=8)
  assert not (tmp_path / "out").exists()  # nothing written


def test_main_wrapper_prints_one_line_and_exits_1(capsys):
  def main(argv):
    del argv
    modeling.BertConfig.from_json_file("/nonexistent/bert_config.json")

  with pytest.raises(SystemExit) as info:
    common.main_wrapper(main)([])
  assert info.value.code == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("ERROR: --bert_config_file")


def test_ctrl_c_names_the_last_checkpoint_and_how_to_resume(tmp_path, capsys):
  cfg = runner.RunConfig(str(tmp_path / "out"), save_checkpoints_steps=2,
                         log_steps=1)

  def on_checkpoint(step, prefix):
    del prefix
    if step == 4:
      raise KeyboardInterrupt()

  def main(argv):
    del argv
    runner.train(cfg, runner_toy.ToyTask(), runner_toy.input_fn_builder(
        runner_toy.make_data(), True), 10, 1, 0.1, train_batch_size=8,
                 on_checkpoint=on_checkpoint)

  with pytest.raises(SystemExit) as info:
    common.main_wrapper(main)([])
  assert info.value.code == 130
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1, lines
  assert "model.ckpt-4" in lines[0] and "same command to resume" in lines[0]
  assert checkpoints.latest_checkpoint(cfg.output_dir).endswith("model.ckpt-4")
  common.set_interrupt_note(None)


def test_tfhub_handle_missing_or_offline():
  import export_hub  # pylint: disable=g-import-not-at-top

  class OfflineHub(object):
    @staticmethod
    def load(handle):
      import urllib.error  # pylint: disable=g-import-not-at-top
      raise urllib.error.URLError("[Errno -2] Name or service not known")

  with pytest.raises(common.UserError, match="does not exist"):
    export_hub._load_hub_module(OfflineHub, "/no/such/hub_module")
  with pytest.raises(common.UserError,
                     match="cannot be downloaded.*Name or service not known"):
    export_hub._load_hub_module(OfflineHub, "https://tfhub.dev/x/bert/1")


def test_extract_features_non_utf8_input_is_found_before_the_work(tmp_path):
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"fine line\ncaf\xe9 au lait\n")
  with pytest.raises(common.UserError, match="line 2 is not valid UTF-8"):
    extract_features.check_input_encoding(str(bad))
  good = tmp_path / "good.txt"
  good.write_text("caf\u00e9 au lait\n")
  extract_features.check_input_encoding(str(good))


# ------------------------------------------------------- 3. silent mistakes


def test_a_vocab_that_makes_most_words_unk_warns_once(files, caplog):
  caplog.set_level("WARNING")
  text = SAMPLE.read_text().splitlines()
  tokenizer = tokenization.FullTokenizer(str(files / "vocab11.txt"), True)
  for line in text * 3:
    tokenizer.tokenize(line)
  warnings = [r.getMessage() for r in caplog.records if "[UNK]" in
              r.getMessage()]
  assert len(warnings) == 1, warnings
  assert "vocab file (11 entries) does not fit" in warnings[0]
  caplog.clear()
  tokenizer = tokenization.FullTokenizer(str(files / "vocab.txt"), True)
  for line in text * 3:
    tokenizer.tokenize_to_ids(line)
  assert not [r for r in caplog.records if "[UNK]" in r.getMessage()]
  # The ids path counts [UNK] ids the same way.
  caplog.clear()
  tokenizer = tokenization.FullTokenizer(str(files / "vocab11.txt"), True)
  for line in text * 3:
    tokenizer.tokenize_to_ids(line)
  assert len([r for r in caplog.records if "[UNK]" in r.getMessage()]) == 1


# ----------------------------------------------------------- 4. wrong hints


def test_shape_mismatch_names_the_config_value_that_differs():
  require(MINILM)
  named = {"bert/embeddings/word_embeddings": tf.Variable(
      tf.zeros([30522, 32]))}
  with pytest.raises(ValueError) as info:
    checkpoints.init_from_checkpoint(named, str(MINILM / "bert_model.ckpt"))
  message = str(info.value)
  assert "hidden_size in bert_config.json is 32 but the checkpoint's is 384" \
      in message
  assert "vocabulary size" not in message
  named = {"bert/embeddings/word_embeddings": tf.Variable(
      tf.zeros([100, 384]))}
  with pytest.raises(ValueError, match="vocab_size in bert_config.json is 100 "
                     "but the checkpoint's is 30522"):
    checkpoints.init_from_checkpoint(named, str(MINILM / "bert_model.ckpt"))
  named = {"bert/encoder/layer_0/intermediate/dense/kernel": tf.Variable(
      tf.zeros([384, 64]))}
  with pytest.raises(ValueError, match="intermediate_size in bert_config.json "
                     "is 64 but the checkpoint's is 1536"):
    checkpoints.init_from_checkpoint(named, str(MINILM / "bert_model.ckpt"))


def test_load_is_one_summary_line_unless_verbose_init(caplog):
  require(MINILM)
  config = modeling.BertConfig.from_json_file(str(MINILM / "bert_config.json"))
  model = modeling.BertModel(config)
  named = dict(model.named_variables())
  caplog.set_level("INFO")
  checkpoints.init_from_checkpoint(named, str(MINILM / "bert_model.ckpt"))
  lines = [r.getMessage() for r in caplog.records]
  assert len(lines) == 1 and lines[0].startswith(
      "Initialized %d of %d model variables" % (len(named), len(named)))
  assert len(lines[0]) < 400
  caplog.clear()
  checkpoints.set_verbose_init(True)
  try:
    checkpoints.init_from_checkpoint(named, str(MINILM / "bert_model.ckpt"))
  finally:
    checkpoints.set_verbose_init(False)
  lines = [r.getMessage() for r in caplog.records]
  assert sum("*INIT_FROM_CKPT*" in l for l in lines) == len(named)


def test_case_check_offers_a_flag_not_an_edit():
  with pytest.raises(ValueError) as info:
    tokenization.validate_case_matches_checkpoint(
        True, "/m/cased_L-12_H-768_A-12/bert_model.ckpt")
  assert "--skip_case_check" in str(info.value)
  assert "comment out" not in str(info.value)


def test_squad_json_error_reads_well(tmp_path):
  import run_squad  # pylint: disable=g-import-not-at-top
  bad = tmp_path / "bad.json"
  bad.write_text('{"data": [ {"title": "x",, } ]}')
  with pytest.raises(ValueError) as info:
    run_squad.read_squad_examples(str(bad), is_training=False)
  message = str(info.value)
  assert "at at" not in message and "(line 1, column" in message


# ---------------------------------------------------- TensorBoard and summary


def _scalars(directory):
  from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
  found = {}
  for path in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        found[(value.tag, event.step)] = float(
            tf.make_ndarray(value.tensor))
  return found


def test_eval_scalars_go_to_tensorboard_under_eval(tmp_path, caplog):
  caplog.set_level("INFO")
  cfg = runner.RunConfig(str(tmp_path), save_checkpoints_steps=3, log_steps=3)
  data = runner_toy.make_data()
  task = runner_toy.ToyTask()
  runner.train(cfg, task, runner_toy.input_fn_builder(data, True), 6, 1, 0.1,
               train_batch_size=8)
  done = [r.getMessage() for r in caplog.records
          if r.getMessage().startswith("Training done")]
  assert len(done) == 1 and "steps 0 -> 6" in done[0]
  assert "final loss" in done[0] and "model.ckpt-6" in done[0]
  results = runner.evaluate(cfg, task, runner_toy.input_fn_builder(
      data, False), 8)
  scalars = _scalars(str(tmp_path / "eval"))
  assert scalars[("loss", 6)] == pytest.approx(results["loss"], rel=1e-6)
  assert ("sq_err", 6) in scalars
  assert ("loss", 6) in _scalars(str(tmp_path))  # the training curve beside it


# ------------------------------------------- run_classifier on raw text


def test_predict_text_examples_and_output_lines():
  import io  # pylint: disable=g-import-not-at-top
  import run_classifier  # pylint: disable=g-import-not-at-top
  examples = run_classifier.text_examples(
      "-", ["0", "1"], stdin=io.StringIO("A cat sat .\tA dog sat .\n\n"
                                         "The mat .\n"))
  assert [(e.text_a, e.text_b, e.label) for e in examples] == [
      ("A cat sat .", "A dog sat .", "0"), ("The mat .", None, "0")]
  # A literal "\t" typed on the command line separates a pair too.
  one = run_classifier.text_examples("Hello .\\tHi .", None)
  assert (one[0].text_a, one[0].text_b, one[0].label) == ("Hello .", "Hi .",
                                                          0.0)
  with pytest.raises(common.UserError, match="no text"):
    run_classifier.text_examples("-", ["0", "1"], stdin=io.StringIO("\n \n"))
  out = io.StringIO()
  run_classifier.print_text_predictions(
      examples, [{"probabilities": np.array([0.25, 0.75])},
                 {"probabilities": np.array([0.9, 0.1])}], ["0", "1"], out)
  assert out.getvalue().splitlines() == [
      "predicted_label\tprobability_0\tprobability_1\ttext",
      "1\t0.250000\t0.750000\tA cat sat .\tA dog sat .",
      "0\t0.900000\t0.100000\tThe mat ."]


def test_run_classifier_predicts_raw_text_from_stdin(files):
  """No --data_dir, no exported SavedModel: text in, labels out."""
  proc = subprocess.run(
      [sys.executable, str(ROOT / "run_classifier.py"), "--task_name=MRPC",
       "--vocab_file", str(files / "vocab.txt"), "--bert_config_file",
       str(files / "bert_config.json"), "--output_dir", str(files / "rc_text"),
       "--do_predict", "--predict_text=-", "--max_seq_length=32",
       "--allow_untrained_head"],
      input="The baker lit the ovens .\tThe ovens were lit .\nRain fell .\n",
      capture_output=True, text=True, timeout=240, env=_env(), cwd=files)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert lines[0] == "predicted_label\tprobability_0\tprobability_1\ttext"
  assert len(lines) == 3
  for line, text in zip(lines[1:], ["The baker lit the ovens .\tThe ovens "
                                    "were lit .", "Rain fell ."]):
    label, p0, p1, rest = line.split("\t", 3)
    assert rest == text
    assert abs(float(p0) + float(p1) - 1.0) < 1e-5
    assert label == ("0" if float(p0) >= float(p1) else "1")
  _own_first(proc)


# ------------------------------------------------------------- 5. --help


def test_help_lists_every_flag_of_the_script():
  """run_classifier_with_tfhub.py --help showed one flag before."""
  proc = _run([ROOT / "run_classifier_with_tfhub.py", "--help"], ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  for name in ("bert_hub_module_handle", "task_name", "data_dir",
               "save_checkpoints_steps", "mixed_precision", "use_xla",
               "gradient_accumulation_steps", "seed", "use_tpu", "tpu_name",
               "verbose_init", "skip_case_check"):
    assert re.search(r"^  --(\[no\])?%s:" % name, out, re.M), name
  # Grouped: the script's own flags, the shared script's, the runtime flags.
  headings = [l for l in out.splitlines() if l.startswith("Flags of") or
              l.startswith("Runtime flags")]
  assert [h.split(" (")[0] for h in headings] == [
      "Flags of run_classifier_with_tfhub.py:", "Flags of run_classifier.py:",
      "Runtime flags"]
  assert "cuInit" not in proc.stderr and "oneDNN" not in proc.stderr
