"""run_ner.py: the CoNLL reader, windows, label alignment, conlleval scores,
the head's loss, decoding, and train/eval/predict end to end (tiny model)."""
import itertools
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from conftest import DATA, REFERENCE, ROOT, require

import common
import modeling
import run_ner
import tokenization

FLAGS = flags.FLAGS
WNUT = DATA / "ner" / "wnut17"
VOCAB = REFERENCE / "data" / "vocab.txt"

TINY_CONFIG = dict(
    attention_probs_dropout_prob=0.1, hidden_act="gelu",
    hidden_dropout_prob=0.1, hidden_size=32, initializer_range=0.02,
    intermediate_size=64, max_position_embeddings=64, num_attention_heads=2,
    num_hidden_layers=2, type_vocab_size=2, vocab_size=30522)


# ----------------------------------------------------------------------------
# The CoNLL reader.
# ----------------------------------------------------------------------------


def _write(path, text):
  path.write_text(text, encoding="utf-8")
  return str(path)


def test_reader_tabs_spaces_docstart_and_blank_lines(tmp_path):
  path = _write(tmp_path / "a.txt",
                "-DOCSTART- -X- -X- O\n\n"
                "EU NNP B-ORG\nrejects\tVBZ\tO\n\t\n \n"
                "Peter\tB-PER\nBlackburn   I-PER\r\n\n\n\n")
  sentences = run_ner.read_conll(path)
  assert [s.words for s in sentences] == [["EU", "rejects"],
                                          ["Peter", "Blackburn"]]
  assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
  assert [s.line_numbers for s in sentences] == [[3, 4], [7, 8]]
  assert run_ner.labels_from_sentences(sentences) == [
      "O", "B-ORG", "B-PER", "I-ORG", "I-PER"]


def test_reader_untagged_file_for_predict(tmp_path):
  path = _write(tmp_path / "test.txt", "Hello\nworld\n\nBye\n")
  sentences = run_ner.read_conll(path, require_tags=False)
  assert [s.words for s in sentences] == [["Hello", "world"], ["Bye"]]
  assert all(s.tags is None for s in sentences)
  with pytest.raises(common.UserError, match=r"test\.txt:1: the token 'Hello'"
                     r" has no tag"):
    run_ner.read_conll(path)
  mixed = _write(tmp_path / "mixed.txt", "Hello\nworld O\n")
  with pytest.raises(common.UserError, match=r"mixed\.txt:2: "):
    run_ner.read_conll(mixed, require_tags=False)


def test_reader_bad_input(tmp_path):
  path = _write(tmp_path / "dev.txt", "a O\nb B-X\n\nc\nd O\n")
  with pytest.raises(common.UserError) as e:
    run_ner.read_conll(path)
  assert "dev.txt:4:" in str(e.value) and "'c' has no tag" in str(e.value)
  empty = _write(tmp_path / "empty.txt", "\n \n-DOCSTART- O\n\n")
  with pytest.raises(common.UserError, match="holds no sentence"):
    run_ner.read_conll(empty)
  with pytest.raises(common.UserError, match="not found"):
    run_ner.read_conll(str(tmp_path / "missing.txt"))
  sentences = run_ner.read_conll(_write(tmp_path / "dev2.txt",
                                        "a O\nb B-new\n"))
  with pytest.raises(common.UserError,
                     match=r"dev2\.txt:2: tag 'B-new' is not in the label"):
    run_ner.check_tags(sentences, ["O", "B-X"], "from the training file")


def test_data_file_prefers_txt_then_conll(tmp_path):
  _write(tmp_path / "dev.conll", "a O\n")
  assert run_ner.data_file(str(tmp_path), "dev").endswith("dev.conll")
  _write(tmp_path / "dev.txt", "a O\n")
  assert run_ner.data_file(str(tmp_path), "dev").endswith("dev.txt")
  with pytest.raises(common.UserError, match="neither train.txt nor"):
    run_ner.data_file(str(tmp_path), "train")


# ----------------------------------------------------------------------------
# Word pieces, windows and labels.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory):
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "john", "##son", "lives", "in",
           "new", "york"]
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(vocab) + "\n")
  return tokenization.FullTokenizer(str(path), do_lower_case=True)


def test_label_alignment_hand_computed(small_tokenizer):
  sentence = run_ner.Sentence(["Johnson", "lives", "in", "New", "York"],
                              ["B-PER", "O", "O", "B-LOC", "I-LOC"],
                              [1, 2, 3, 4, 5], "x")
  labels = {"O": 0, "B-LOC": 1, "B-PER": 2, "I-LOC": 3}
  (f,) = run_ner.convert_sentence(0, sentence, labels, 10, 64,
                                  small_tokenizer)
  # [CLS] john ##son lives in new york [SEP] [PAD] [PAD]
  assert f.input_ids == [2, 4, 5, 6, 7, 8, 9, 3, 0, 0]
  assert f.input_mask == [1] * 8 + [0] * 2
  assert f.segment_ids == [0] * 10
  assert f.label_ids == [0, 2, 0, 0, 0, 1, 3, 0, 0, 0]
  assert f.label_mask == [0, 1, 0, 1, 1, 1, 1, 0, 0, 0]
  assert f.word_index == [-1, 0, -1, 1, 2, 3, 4, -1, -1, -1]

  # max_seq_length 5: 3 pieces a window, 2 apart: pieces [0-2], [2-4], [4-5].
  # First pieces at 0 (john), 2 (lives), 3 (in), 4 (new), 5 (york):
  # lives ties (0 context both) -> the first window; "in" has 1 piece of
  # context either side in the second; "new" 0 in both, the longer wins.
  windows = run_ner.convert_sentence(0, sentence, labels, 5, 2,
                                     small_tokenizer)
  assert [w.input_ids for w in windows] == [[2, 4, 5, 6, 3], [2, 6, 7, 8, 3],
                                            [2, 8, 9, 3, 0]]
  assert [w.word_index for w in windows] == [[-1, 0, -1, 1, -1],
                                             [-1, -1, 2, 3, -1],
                                             [-1, -1, 4, -1, -1]]
  assert [w.label_ids for w in windows] == [[0, 2, 0, 0, 0], [0, 0, 0, 1, 0],
                                            [0, 0, 3, 0, 0]]


def test_windows_predict_every_word_once_from_its_best_window(
    small_tokenizer):
  rng = np.random.RandomState(0)
  words = ["johnson", "lives", "in", "new", "york", "\u200b"]
  for trial in range(60):
    n = rng.randint(1, 40)
    sentence = run_ner.Sentence(list(rng.choice(words, n)), ["O"] * n,
                                list(range(n)), "x")
    max_seq_length = int(rng.randint(3, 20))
    stride = int(rng.randint(1, 25))
    features = run_ner.convert_sentence(0, sentence, {"O": 0},
                                        max_seq_length, stride,
                                        small_tokenizer)
    pieces = [p for w in sentence.words
              for p in (small_tokenizer.tokenize(w) or ["[UNK]"])]
    windows = run_ner.plan_windows(len(pieces), max_seq_length - 2, stride)
    assert len(features) == len(windows)
    # The windows cover every piece.
    covered = set()
    for start, length in windows:
      covered.update(range(start, start + length))
    assert covered == set(range(len(pieces)))
    seen = {}
    first = np.cumsum([0] + [len(small_tokenizer.tokenize(w) or ["[UNK]"])
                             for w in sentence.words])[:-1]
    for k, f in enumerate(features):
      assert len(f.input_ids) == max_seq_length
      for position, w in enumerate(f.word_index):
        if w >= 0:
          assert w not in seen
          seen[w] = k
          start, _ = windows[k]
          assert position == first[w] - start + 1
    assert sorted(seen) == list(range(n))
    # Chosen: the most context (min of pieces left/right) among the windows
    # holding the word's first piece.
    for w, k in seen.items():
      def context(window):
        start, length = window
        p = first[w]
        return min(p - start, start + length - 1 - p)
      holding = [win for win in windows
                 if win[0] <= first[w] < win[0] + win[1]]
      assert context(windows[k]) == max(context(win) for win in holding)


# ----------------------------------------------------------------------------
# conlleval's entity-level scores against an independent implementation.
# ----------------------------------------------------------------------------


def _spans(tags):
  """Entity spans of a BIO sentence, as conlleval reads them: a span starts
  at B-X, or at I-X not continuing an X span (a broken I- tag); it extends
  over the I-X words that follow."""
  spans = set()
  start, kind = None, None
  for i, tag in enumerate(list(tags) + ["O"]):
    prefix, _, t = tag.partition("-")
    continues = prefix == "I" and kind == t and start is not None
    if start is not None and not continues:
      spans.add((start, i, kind))
      start, kind = None, None
    if prefix == "B" or (prefix == "I" and not continues):
      start, kind = i, t
  return spans


def _independent_scores(gold_sentences, guessed_sentences):
  gold, guessed = set(), set()
  right_tags = total = 0
  for index, (g, p) in enumerate(zip(gold_sentences, guessed_sentences)):
    gold |= {(index,) + s for s in _spans(g)}
    guessed |= {(index,) + s for s in _spans(p)}
    right_tags += sum(a == b for a, b in zip(g, p))
    total += len(g)
  correct = len(gold & guessed)
  precision = correct / len(guessed) if guessed else 0.0
  recall = correct / len(gold) if gold else 0.0
  f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
  by_type = {}
  for t in {s[3] for s in gold | guessed}:
    by_type[t] = (len({s for s in gold & guessed if s[3] == t}),
                  len({s for s in guessed if s[3] == t}),
                  len({s for s in gold if s[3] == t}))
  return (precision, recall, f1, right_tags / total), by_type


def test_conlleval_hand_example():
  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "I-ORG", "O"]]
  guess = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "I-LOC"]]
  counts = run_ner.conll_counts(gold, guess)
  # Gold: PER(0-1), LOC(3), ORG(0-1 of sentence 2, a broken I- start).
  # Guessed: PER(0-1), ORG(3), ORG(0-1), LOC(2). Correct: PER and ORG.
  assert sum(counts.gold_chunks.values()) == 3
  assert sum(counts.guessed_chunks.values()) == 4
  assert sum(counts.correct_chunks.values()) == 2
  precision, recall, f1 = counts.scores()
  assert (precision, recall) == (0.5, 2 / 3)
  assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
  assert counts.accuracy == 4 / 7
  assert counts.scores("ORG") == (0.5, 1.0, pytest.approx(2 / 3))
  table = counts.table()
  assert table[0] == ("processed 7 tokens with 3 phrases; found: 4 phrases; "
                      "correct: 2.")
  assert table[2].strip().startswith("LOC: precision:   0.00%")


def test_conlleval_against_independent_spans():
  rng = np.random.RandomState(1)
  tags = ["O", "B-a", "I-a", "B-b", "I-b", "B-c-d", "I-c-d"]
  for _ in range(300):
    gold, guess = [], []
    for _ in range(rng.randint(1, 5)):
      n = rng.randint(1, 12)
      g = list(rng.choice(tags, n, p=[.4, .15, .15, .1, .1, .05, .05]))
      # Guesses: mostly the gold tag, sometimes another (broken I-, type
      # changes, B- inside spans).
      p = [t if rng.rand() < 0.6 else rng.choice(tags) for t in g]
      gold.append(g)
      guess.append(p)
    counts = run_ner.conll_counts(gold, guess)
    (precision, recall, f1, accuracy), by_type = _independent_scores(
        gold, guess)
    got = counts.scores()
    assert got == (pytest.approx(precision), pytest.approx(recall),
                   pytest.approx(f1))
    assert counts.accuracy == pytest.approx(accuracy)
    for t, (correct, guessed, in_gold) in by_type.items():
      assert (counts.correct_chunks[t], counts.guessed_chunks[t],
              counts.gold_chunks[t]) == (correct, guessed, in_gold)


# ----------------------------------------------------------------------------
# Decoding.
# ----------------------------------------------------------------------------


def test_viterbi_against_brute_force():
  labels = ["O", "B-a", "I-a", "B-b", "I-b"]
  allowed, start = run_ner.bio_transitions(labels)
  assert not start[2] and not allowed[0, 2] and allowed[1, 2]
  assert allowed[2, 2] and not allowed[3, 2] and allowed[2, 0]
  rng = np.random.RandomState(2)
  for _ in range(40):
    n = rng.randint(1, 6)
    log_probs = np.log(rng.dirichlet(np.ones(5), size=n))
    best, best_score = None, -np.inf
    for path in itertools.product(range(5), repeat=n):
      if not start[path[0]] or not all(
          allowed[a, b] for a, b in zip(path, path[1:])):
        continue
      score = sum(log_probs[t, k] for t, k in enumerate(path))
      if score > best_score:
        best, best_score = list(path), score
    assert run_ner.viterbi_decode(log_probs, allowed, start) == best
  lp = np.log(np.array([[.1, .1, .8, 0, 0], [.1, .1, .8, 0, 0]]) + 1e-9)
  assert run_ner.decode([lp], labels) == [["I-a", "I-a"]]
  assert run_ner.decode([lp], labels, bio_constrained=True) == [["B-a",
                                                                  "I-a"]]


# ----------------------------------------------------------------------------
# The head.
# ----------------------------------------------------------------------------


def test_head_loss_and_metrics_against_numpy():
  config = modeling.BertConfig.from_dict(TINY_CONFIG)
  tf.random.set_seed(3)
  task = run_ner.NerTask(config, ["O", "B-x", "I-x"],
                         options=modeling.EncoderOptions())
  model = task.create_model()
  names = list(model.named_variables())
  assert names[-2:] == ["output_weights", "output_bias"]
  assert model.output_weights.shape == (3, 32)
  model.output_bias.assign([0.3, -0.2, 0.1])
  rng = np.random.RandomState(4)
  features = {
      "input_ids": tf.constant(rng.randint(5, 1000, (2, 7)), tf.int32),
      "input_mask": tf.constant([[1] * 7, [1] * 5 + [0] * 2], tf.int32),
      "segment_ids": tf.zeros((2, 7), tf.int32),
      "label_ids": tf.constant(rng.randint(0, 3, (2, 7)), tf.int32),
      "label_mask": tf.constant([[0, 1, 0, 1, 1, 0, 0],
                                 [0, 1, 1, 0, 1, 0, 0]], tf.int32),
  }
  sequence = model.bert(features["input_ids"], features["input_mask"],
                        features["segment_ids"]).sequence_output.numpy()
  w = model.output_weights.numpy().astype(np.float64)
  b = model.output_bias.numpy().astype(np.float64)
  logits = sequence.astype(np.float64) @ w.T + b
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  labels = features["label_ids"].numpy()
  mask = features["label_mask"].numpy().astype(bool)
  gold = np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
  expected = -gold[mask].mean()
  loss, _ = task.compute_loss(model, features, False)
  assert float(loss) == pytest.approx(expected, rel=1e-5)
  metrics = task.eval_metrics(model, features)
  n, d = metrics["eval_loss"]
  assert float(n) / float(d) == pytest.approx(expected, rel=1e-5)
  n, d = metrics["eval_accuracy"]
  assert float(d) == mask.sum()
  assert float(n) == (log_probs.argmax(-1) == labels)[mask].sum()
  out = task.predict(model, features)["log_probs"].numpy()
  np.testing.assert_allclose(out, log_probs, atol=1e-5)
  # Dropout only in training.
  train_loss, _ = task.compute_loss(model, features, True)
  assert float(train_loss) != pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------
# End to end on a tiny model and a slice of WNUT 2017.
# ----------------------------------------------------------------------------


def _sentences_text(path, count, skip=0):
  out, seen = [], 0
  block = []
  for line in open(path, encoding="utf-8"):
    if line.strip():
      block.append(line)
      continue
    if block:
      if seen >= skip:
        out.append("".join(block))
      seen += 1
      block = []
      if len(out) == count:
        break
  return "\n".join(out) + "\n"


LONG_SENTENCE = "".join("word%d\t%s\n" % (i, "B-person" if i % 7 == 0 else
                                          ("I-person" if i % 7 == 1 else "O"))
                        for i in range(40))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  require(WNUT)
  require(VOCAB)
  root = tmp_path_factory.mktemp("ner_e2e")
  (root / "bert_config.json").write_text(json.dumps(TINY_CONFIG))
  data = root / "data"
  data.mkdir()
  train = _sentences_text(WNUT / "train.conll", 40)
  (data / "train.txt").write_text(train + "\n" + LONG_SENTENCE,
                                  encoding="utf-8")
  dev = _sentences_text(WNUT / "dev.conll", 12)
  (data / "dev.txt").write_text(dev + "\n" + LONG_SENTENCE + "\n\n",
                                encoding="utf-8")
  test = _sentences_text(WNUT / "test.conll", 9)
  (data / "test.conll").write_text(
      "".join(l.split("\t")[0] + "\n" if l.strip() else "\n"
              for l in test.splitlines(True)), encoding="utf-8")
  return root


def run_main(argv):
  run_ner.define_flags()
  FLAGS.unparse_flags()
  FLAGS(["run_ner.py"] + argv)
  try:
    run_ner.main([])
  finally:
    FLAGS.unparse_flags()


def _flags(workdir, output_dir, **extra):
  argv = ["--data_dir=%s" % (workdir / "data"), "--vocab_file=%s" % VOCAB,
          "--bert_config_file=%s" % (workdir / "bert_config.json"),
          "--output_dir=%s" % output_dir, "--max_seq_length=24",
          "--doc_stride=8", "--train_batch_size=8", "--eval_batch_size=8",
          "--predict_batch_size=8", "--learning_rate=1e-3",
          "--num_train_epochs=1", "--log_steps=2", "--seed=1"]
  return argv + ["--%s=%s" % kv for kv in extra.items()]


def _read_kv(path):
  return dict(line.rstrip("\n").split(" = ")
              for line in open(path, encoding="utf-8"))


def _blocks(path):
  text = open(path, encoding="utf-8").read()
  assert not text.startswith("\n") and text.endswith("\n")
  return [[line.split(" ") for line in block.splitlines()]
          for block in text.rstrip("\n").split("\n\n")]


@pytest.fixture(scope="module")
def trained(workdir):
  output_dir = workdir / "out"
  run_main(_flags(workdir, output_dir, do_train="true", do_eval="true",
                  do_predict="true", dynamic_padding="true"))
  return output_dir


def test_train_eval_predict(workdir, trained):
  files = set(os.listdir(trained))
  assert {"train.tf_record", "eval.tf_record", "predict.tf_record",
          "label_list.txt", "eval_results.txt", "eval_predictions.txt",
          "test_predictions.txt"} <= files
  assert "test_results.txt" not in files  # The test file has no tags.
  assert not [f for f in files if ".tmp" in f]
  labels = open(trained / "label_list.txt").read().split()
  assert labels[0] == "O" and set(labels) <= {
      "O", "B-person", "I-person", "B-location", "I-location", "B-group",
      "I-group", "B-corporation", "I-corporation", "B-product", "I-product",
      "B-creative-work", "I-creative-work"}
  ckpt = dict(tf.train.list_variables(tf.train.latest_checkpoint(
      str(trained))))
  assert ckpt["output_weights"] == [len(labels), 32]
  assert ckpt["output_bias"] == [len(labels)]
  assert "output_weights/adam_m" in ckpt and "global_step" in ckpt

  results = _read_kv(trained / "eval_results.txt")
  assert sorted(results) == ["eval_accuracy", "eval_f1", "eval_loss",
                             "eval_precision", "eval_recall", "global_step"]
  tokenizer = tokenization.FullTokenizer(str(VOCAB), do_lower_case=True)
  windows = run_ner.convert_sentences(
      run_ner.read_conll(str(workdir / "data" / "train.txt")), labels, 24, 8,
      tokenizer)
  assert len(windows) > 41  # The long sentence (at least) is split.
  assert int(results["global_step"]) == len(windows) // 8
  assert all(np.isfinite(float(v)) for v in results.values())

  # eval_predictions.txt: every dev word once, in order, with its gold tag;
  # the scores recomputed from it agree with eval_results.txt.
  dev = run_ner.read_conll(str(workdir / "data" / "dev.txt"))
  blocks = _blocks(trained / "eval_predictions.txt")
  assert [[r[0] for r in b] for b in blocks] == [s.words for s in dev]
  assert [[r[1] for r in b] for b in blocks] == [s.tags for s in dev]
  assert all(len(r) == 3 and r[2] in labels for b in blocks for r in b)
  (precision, recall, f1, accuracy), _ = _independent_scores(
      [[r[1] for r in b] for b in blocks], [[r[2] for r in b] for b in blocks])
  assert float(results["eval_precision"]) == pytest.approx(precision, abs=1e-6)
  assert float(results["eval_recall"]) == pytest.approx(recall, abs=1e-6)
  assert float(results["eval_f1"]) == pytest.approx(f1, abs=1e-6)
  assert float(results["eval_accuracy"]) == pytest.approx(accuracy, abs=1e-6)

  test = run_ner.read_conll(str(workdir / "data" / "test.conll"),
                            require_tags=False)
  blocks = _blocks(trained / "test_predictions.txt")
  assert [[r[0] for r in b] for b in blocks] == [s.words for s in test]
  assert all(len(r) == 2 and r[1] in labels for b in blocks for r in b)


def test_predict_again_fixed_length_constrained_and_errors(workdir, trained):
  """A second run restores the checkpoint: fixed-length predictions equal
  the bucketed ones; constrained decoding writes no I- after O; a tag never
  seen in training stops eval with its file and line."""
  eval_before = open(trained / "eval_predictions.txt").read()
  run_main(_flags(workdir, trained, do_eval="true",
                  bio_constrained_decoding="true"))
  for block in _blocks(trained / "eval_predictions.txt"):
    previous = "O"
    for row in block:
      if row[2].startswith("I-"):
        assert previous[2:] == row[2][2:]
      previous = row[2]
  run_main(_flags(workdir, trained, do_eval="true"))
  assert open(trained / "eval_predictions.txt").read() == eval_before

  # Another output_dir, the weights and label_list.txt from beside
  # --init_checkpoint (as on another machine): the same predictions.
  other = workdir / "other"
  run_main(_flags(workdir, other, do_eval="true") + [
      "--init_checkpoint=%s" % tf.train.latest_checkpoint(str(trained))])
  assert open(other / "eval_predictions.txt").read() == eval_before
  assert not (other / "label_list.txt").exists()

  bad = workdir / "bad"
  bad.mkdir()
  (bad / "dev.txt").write_text("Hello O\nthere B-planet\n", encoding="utf-8")
  with pytest.raises(common.UserError,
                     match=r"dev\.txt:2: tag 'B-planet' is not in the label "
                     r"list .*label_list\.txt"):
    run_main(_flags(workdir, trained, do_eval="true") +
             ["--data_dir=%s" % bad])


def test_script_reports_bad_input_in_one_line(workdir, tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  (data / "train.txt").write_text("a O\nb\n", encoding="utf-8")
  argv = [sys.executable, str(ROOT / "run_ner.py")] + _flags(
      workdir, tmp_path / "out", do_train="true") + ["--data_dir=%s" % data]
  proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
  assert proc.returncode == 1
  errors = [l for l in proc.stderr.splitlines() if l.startswith("ERROR:")]
  assert errors == ["ERROR: %s:2: the token 'b' has no tag: each line needs "
                    "the token and its tag (the last column), separated by a "
                    "tab or spaces" % (data / "train.txt")]
  assert not (tmp_path / "out" / "train.tf_record").exists()
  (data / "train.txt").write_text("\n\n", encoding="utf-8")
  with pytest.raises(common.UserError, match=r"train\.txt holds no sentence"):
    run_main(argv[2:])
