"""run_fill_mask.py against an independent float64 numpy BERT + masked-LM head.

Two models: a tiny random one (hidden 32, 2 layers, written here with
checkpoints.save, weights drawn large enough that the distributions are peaked)
and the reference pretraining checkpoint ../shared/reference/model/pretrain_tiny
(written by the original run_pretraining.py; it stands in for the demo's
pretrained model, which does not exist in a fresh checkout). The numpy code reads
the checkpoint's weights by name and computes the original math: embeddings,
LayerNorm eps 1e-12, the -10000 mask, tanh gelu, then the head (dense + gelu,
LayerNorm, tied decoder, output bias) and a softmax.
"""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REFERENCE, ROOT, require

import checkpoints
import modeling
import run_fill_mask
import run_pretraining
import runner
import tokenization

TOL = 1e-5
PRETRAIN_TINY = REFERENCE / "model" / "pretrain_tiny"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_WORDS = ["w%d" % i for i in range(40)]
TINY_PIECES = ["##x%d" % i for i in range(15)]


# ------------------------------------------------------------------------------------
# numpy model
# ------------------------------------------------------------------------------------


def _layer_norm(x, w, name):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-12) * w[name + "/gamma"] + w[name + "/beta"]


def _gelu(x):
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) *
                                  (x + 0.044715 * x ** 3)))


def _dense(x, w, name):
  return x @ w[name + "/kernel"] + w[name + "/bias"]


def np_log_probs(w, config, ids, positions):
  """log softmax of the MLM head at `positions` of one unpadded sequence."""
  ids = np.asarray(ids)
  n = len(ids)
  x = (w["bert/embeddings/word_embeddings"][ids] +
       w["bert/embeddings/token_type_embeddings"][0] +
       w["bert/embeddings/position_embeddings"][:n])
  x = _layer_norm(x, w, "bert/embeddings/LayerNorm")
  heads = config.num_attention_heads
  d = config.hidden_size // heads
  for i in range(config.num_hidden_layers):
    p = "bert/encoder/layer_%d/" % i

    def split(t):
      return t.reshape(n, heads, d).transpose(1, 0, 2)

    q = split(_dense(x, w, p + "attention/self/query"))
    k = split(_dense(x, w, p + "attention/self/key"))
    v = split(_dense(x, w, p + "attention/self/value"))
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    probs = scores / scores.sum(-1, keepdims=True)
    context = (probs @ v).transpose(1, 0, 2).reshape(n, heads * d)
    a = _dense(context, w, p + "attention/output/dense")
    x = _layer_norm(a + x, w, p + "attention/output/LayerNorm")
    h = _gelu(_dense(x, w, p + "intermediate/dense"))
    x = _layer_norm(_dense(h, w, p + "output/dense") + x, w,
                    p + "output/LayerNorm")
  h = _gelu(_dense(x[list(positions)], w, "cls/predictions/transform/dense"))
  h = _layer_norm(h, w, "cls/predictions/transform/LayerNorm")
  logits = h @ w["bert/embeddings/word_embeddings"].T + w[
      "cls/predictions/output_bias"]
  logits -= logits.max(-1, keepdims=True)
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def _read_weights(prefix):
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: reader.get_tensor(name).astype(np.float64)
          for name in reader.get_variable_to_shape_map()
          if not name.endswith(("adam_m", "adam_v")) and name != "global_step"}


# ------------------------------------------------------------------------------------
# Models and runs
# ------------------------------------------------------------------------------------


class Env(object):
  """A loaded model with its tokenizer, task and numpy weights."""

  def __init__(self, config, vocab_file, prefix, top_k=3):
    self.config = config
    self.prefix = str(prefix)
    self.tokenizer = tokenization.FullTokenizer(str(vocab_file), True,
                                                never_split=["[MASK]"])
    self.cfg = runner.RunConfig(None)
    word_start, continuation = run_fill_mask.word_kinds(self.tokenizer,
                                                        config.vocab_size)
    self.word_start, self.continuation = word_start, continuation
    self.task = run_fill_mask.FillMaskTask(
        config, top_k, options=self.cfg.encoder_options, word_start=word_start,
        continuation=continuation)
    self.model, _, _ = runner.load_model(self.cfg, self.task,
                                         init_checkpoint=self.prefix)
    self.weights = _read_weights(self.prefix)

  def run(self, tmp_path, lines, mode="fill", output_format="jsonl",
          max_seq_length=32, batch_size=2, num_pieces=1, bucket_window=1024):
    input_file = tmp_path / ("in_%s_%s.txt" % (mode, output_format))
    input_file.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    output_file = tmp_path / ("out_%s_%s.txt" % (mode, output_format))
    stats = run_fill_mask.run(
        self.cfg, self.task, self.model, self.tokenizer, str(input_file),
        str(output_file), mode=mode, max_seq_length=max_seq_length,
        batch_size=batch_size, num_pieces=num_pieces,
        bucket_window=bucket_window, output_format=output_format)
    text = output_file.read_text(encoding="utf-8")
    if output_format == "jsonl":
      return [json.loads(l) for l in text.splitlines()], stats
    return text, stats

  def ids(self, text, num_pieces=1):
    line = run_fill_mask.encode_line(0, text, self.tokenizer, 512, num_pieces)
    return line.ids


def _write_vocab(path, words):
  path.write_text("".join(t + "\n" for t in words), encoding="utf-8")
  return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A random 2-layer hidden-32 model with peaked distributions."""
  tmp = tmp_path_factory.mktemp("tiny")
  vocab = SPECIALS + TINY_WORDS + TINY_PIECES
  vocab_file = _write_vocab(tmp / "vocab.txt", vocab)
  config = modeling.BertConfig(
      vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
      num_attention_heads=4, intermediate_size=64, max_position_embeddings=40)
  model = run_pretraining.PretrainingModel(config)
  rng = np.random.RandomState(7)
  named = model.named_variables()
  for name, var in named.items():
    scale = 0.1 if "LayerNorm" in name or name.endswith("bias") else 0.4
    value = rng.normal(0.0, scale, var.shape.as_list())
    if name.endswith("gamma"):
      value += 1.0
    var.assign(value.astype(np.float32))
  prefix = checkpoints.save(str(tmp / "ckpt"), 0, named)
  return Env(config, vocab_file, prefix)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """The reference run_pretraining checkpoint (toy vocab: 0 [PAD], 2 [CLS], ...)."""
  require(PRETRAIN_TINY)
  tmp = tmp_path_factory.mktemp("pretrain_tiny")
  vocab = SPECIALS + ["t%d" % i for i in range(5, 512)]
  vocab_file = _write_vocab(tmp / "vocab.txt", vocab)
  config = modeling.BertConfig.from_json_file(str(PRETRAIN_TINY /
                                                  "bert_config.json"))
  return Env(config, vocab_file, PRETRAIN_TINY / "model.ckpt-20")


def _check_topk(env, record, top_k):
  """Every listed prediction equals numpy; the list is numpy's top_k."""
  ids = env.ids(record["text"])
  positions = [m["position"] for m in record["masks"]]
  log_probs = np_log_probs(env.weights, env.config, ids, positions)
  for mask, row in zip(record["masks"], log_probs):
    probs = np.exp(row)
    got = mask["predictions"]
    assert len(got) == top_k
    want = np.sort(probs)[::-1][:top_k]
    np.testing.assert_allclose([p["probability"] for p in got], want, atol=TOL,
                               rtol=0)
    for p in got:
      assert abs(probs[p["token_id"]] - p["probability"]) <= TOL
      assert p["token"] == env.tokenizer.inv_vocab[p["token_id"]]
    # Same ids wherever numpy's ranking is not a near-tie.
    order = np.argsort(-probs)
    for rank, p in enumerate(got):
      gaps = np.abs(probs[order] - probs[order[rank]])
      if np.sum(gaps <= 2 * TOL) == 1:
        assert p["token_id"] == order[rank]


# ------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------


TINY_LINES = [
    "w1 w2 [MASK] w3",
    "[MASK] w5 w6 w7 w8 w9 w10 [MASK] w11 w12 w13 w14 w15 w16 [MASK] w17",
    "w20 [MASK]",
    "w3 w4x0 [MASK] w5",  # "w4x0" is unknown: [UNK]
]


def test_topk_equals_numpy_tiny_random(tiny, tmp_path):
  records, stats = tiny.run(tmp_path, TINY_LINES, batch_size=2)
  assert [r["line_index"] for r in records] == [0, 1, 2, 3]
  assert [r["text"] for r in records] == TINY_LINES
  assert [len(r["masks"]) for r in records] == [1, 3, 1, 1]
  assert records[0]["masks"][0]["position"] == 3  # [CLS] w1 w2 [MASK]
  assert [m["position"] for m in records[1]["masks"]] == [1, 8, 15]
  for record in records:
    assert "error" not in record and "truncated" not in record
    _check_topk(tiny, record, 3)
  assert (stats.lines, stats.masks, stats.predicted) == (4, 6, 6)


def test_topk_equals_numpy_pretrained_checkpoint(pretrained, tmp_path):
  lines = ["t7 t9 [MASK] t12 t40", "[MASK] t30 t31 [MASK] t100 t200 t300"]
  records, _ = pretrained.run(tmp_path, lines)
  for record in records:
    _check_topk(pretrained, record, 3)


def test_pseudo_log_likelihood_equals_numpy_loop(tiny, tmp_path):
  lines = ["w1 w2 w3 w4", "w10 w11 ##x3 w12 w13 w14", "w7"]
  records, stats = tiny.run(tmp_path, lines, mode="score", bucket_window=5)
  assert stats.predicted == sum(len(tiny.ids(l)) - 2 for l in lines)
  for record, text in zip(records, lines):
    ids = tiny.ids(text)
    want = 0.0
    for i in range(1, len(ids) - 1):
      masked = list(ids)
      masked[i] = tiny.tokenizer.vocab["[MASK]"]
      want += np_log_probs(tiny.weights, tiny.config, masked, [i])[0][ids[i]]
    assert record["num_pieces"] == len(ids) - 2
    assert record["text"] == text
    assert abs(record["pll"] - want) <= 1e-4, (record, want)


def test_whole_words_filled_left_to_right(tiny, tmp_path):
  lines = ["w1 [MASK] w2 w3", "[MASK] w4 [MASK]"]
  records, stats = tiny.run(tmp_path, lines, mode="whole_words", num_pieces=2)
  mask_id = tiny.tokenizer.vocab["[MASK]"]
  # Step 1 per line, then one step per candidate (3 per mask).
  assert stats.predicted == 1 + 2 + 3 * 3
  for record in records:
    ids = tiny.ids(record["text"], num_pieces=2)
    positions = [m["position"] for m in record["masks"]]
    assert all(ids[p] == ids[p + 1] == mask_id for p in positions)
    first = np.exp(np_log_probs(tiny.weights, tiny.config, ids, positions))
    for mask, probs in zip(record["masks"], first):
      p = mask["position"]
      allowed = np.where(tiny.word_start, probs, -1.0)
      want_first = np.sort(allowed)[::-1][:3]
      got_first = sorted((probs[c["token_ids"][0]] for c in
                          mask["predictions"]), reverse=True)
      np.testing.assert_allclose(got_first, want_first, atol=TOL, rtol=0)
      products = []
      for cand in mask["predictions"]:
        a, b = cand["token_ids"]
        assert tiny.word_start[a] and tiny.continuation[b]
        filled = list(ids)
        filled[p] = a
        second = np.exp(np_log_probs(tiny.weights, tiny.config, filled,
                                     [p + 1])[0])
        assert abs(second[b] - np.max(np.where(tiny.continuation, second,
                                               -1.0))) <= TOL
        assert abs(cand["probability"] - probs[a] * second[b]) <= TOL
        pieces = [tiny.tokenizer.inv_vocab[a], tiny.tokenizer.inv_vocab[b]]
        assert cand["pieces"] == pieces
        assert cand["token"] == pieces[0] + pieces[1][2:]
        products.append(cand["probability"])
      assert products == sorted(products, reverse=True)


def test_lines_without_mask_blank_and_too_long(tiny, tmp_path):
  long_line = " ".join(["w1"] * 20) + " [MASK] " + " ".join(["w2"] * 20) + \
      " [MASK] w3"
  lines = ["w1 w2 w3", "", long_line, " ".join(["w4"] * 40) + " [MASK]",
           "w5 [MASK]"]
  records, stats = tiny.run(tmp_path, lines, max_seq_length=32)
  assert len(records) == len(lines)
  assert records[0]["masks"] == [] and records[0]["error"] == \
      "no [MASK] in the line"
  assert records[1]["masks"] == [] and records[1]["error"] == "blank line"
  # Cut at 30 pieces: the first mask (position 21) survives, the second
  # (position 42) is reported as truncated.
  cut = records[2]
  assert cut["truncated"] is True and "error" not in cut
  assert [m["position"] for m in cut["masks"]] == [21, 42]
  assert len(cut["masks"][0]["predictions"]) == 3
  assert cut["masks"][1] == {"position": 42, "truncated": True,
                             "predictions": []}
  ids = tiny.ids(long_line)[:31] + [tiny.tokenizer.vocab["[SEP]"]]
  probs = np.exp(np_log_probs(tiny.weights, tiny.config, ids, [21])[0])
  for p in cut["masks"][0]["predictions"]:
    assert abs(probs[p["token_id"]] - p["probability"]) <= TOL
  assert records[3]["error"] == "every [MASK] is past max_seq_length"
  assert records[3]["masks"][0]["truncated"] is True
  _check_topk(tiny, records[4], 3)
  assert (stats.lines, stats.skipped, stats.truncated) == (5, 3, 2)


def test_tsv_one_line_per_mask(tiny, tmp_path):
  lines = ["w1 w2 [MASK] w3", "w1 w2", "[MASK] w5 [MASK]"]
  records, _ = tiny.run(tmp_path, lines)
  text, _ = tiny.run(tmp_path, lines, output_format="tsv")
  rows = [r.split("\t") for r in text.splitlines()]
  assert [r[:2] for r in rows] == [["0", "3"], ["2", "1"], ["2", "3"]]
  masks = [m for r in records for m in r["masks"]]
  for row, mask in zip(rows, masks):
    assert row[2::2] == [p["token"] for p in mask["predictions"]]
    assert [float(x) for x in row[3::2]] == pytest.approx(
        [p["probability"] for p in mask["predictions"]], abs=1e-6)


def test_empty_input_gives_empty_output(tiny, tmp_path):
  records, stats = tiny.run(tmp_path, [])
  assert records == [] and stats.lines == 0


def test_encode_line_masks_and_never_split(tiny):
  line = run_fill_mask.encode_line(3, "w1 [MASK]. w2[MASK]", tiny.tokenizer, 32,
                                   num_pieces=2)
  vocab = tiny.tokenizer.vocab
  # "." is not in the tiny vocabulary: [UNK].
  assert line.ids == [vocab[t] for t in ["[CLS]", "w1", "[MASK]", "[MASK]",
                                         "[UNK]", "w2", "[MASK]", "[MASK]",
                                         "[SEP]"]]
  assert line.masks == [[2, 3], [6, 7]] and line.live == [0, 1]


# ------------------------------------------------------------------------------------
# The script
# ------------------------------------------------------------------------------------


def _cli(args, stdin=None):
  return subprocess.run([sys.executable, str(ROOT / "run_fill_mask.py")] + args,
                        input=stdin, capture_output=True, text=True, timeout=240,
                        cwd=str(ROOT))


def test_cli_stdin_to_stdout_and_missing_head(tiny, tmp_path):
  config_file = tmp_path / "bert_config.json"
  config_file.write_text(tiny.config.to_json_string())
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("".join(t + "\n" for t in SPECIALS + TINY_WORDS +
                                TINY_PIECES))
  common = ["--bert_config_file=%s" % config_file,
            "--vocab_file=%s" % vocab_file, "--max_seq_length=32",
            "--top_k=3"]
  result = _cli(common + ["--init_checkpoint=%s" % tiny.prefix,
                          "--input_file=-", "--output_file=-"],
                stdin="w1 w2 [MASK] w3\nw9\n")
  assert result.returncode == 0, result.stderr[-2000:]
  records = [json.loads(l) for l in result.stdout.splitlines()]
  assert [r["line_index"] for r in records] == [0, 1]
  _check_topk(tiny, records[0], 3)
  assert records[1]["error"] == "no [MASK] in the line"

  # A checkpoint without cls/predictions (as a fine-tuned classifier has).
  reader = tf.train.load_checkpoint(tiny.prefix)
  encoder_only = {n: reader.get_tensor(n)
                  for n in reader.get_variable_to_shape_map()
                  if n.startswith("bert/")}
  prefix = checkpoints.save(str(tmp_path / "classifier"), 0, encoder_only)
  output_file = tmp_path / "out.jsonl"
  (tmp_path / "in.txt").write_text("w1 [MASK]\n")
  result = _cli(common + ["--init_checkpoint=%s" % prefix,
                          "--input_file=%s" % (tmp_path / "in.txt"),
                          "--output_file=%s" % output_file])
  assert result.returncode == 1
  errors = [l for l in result.stderr.splitlines() if l.startswith("ERROR:")]
  assert len(errors) == 1, result.stderr[-2000:]
  assert "masked-LM head" in errors[0]
  assert "cls/predictions/transform/dense/kernel" in errors[0]
  assert not output_file.exists()
