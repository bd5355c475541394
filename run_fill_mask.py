# coding=utf-8
"""Fill in [MASK] tokens, or score sentences, with a checkpoint's masked-LM head.

A pretrained BERT is a masked language model; this script asks it questions.
Input: text, one line per question, with one or more `[MASK]` tokens
(`--input_file=-` reads stdin). Output (`--output_file=-` writes stdout): one
JSON line per input line, in input order,

  {"line_index": 0, "text": "the capital of france is [MASK] .",
   "masks": [{"position": 6, "predictions": [{"token": "paris",
   "token_id": 3000, "probability": 0.71}, ...]}]}

`position` is the index of the mask in the word-piece sequence, `[CLS]` at 0.
`--output_format=tsv` writes one line per mask instead:
`line_index  position  token_1  probability_1 ... token_k  probability_k`.

The model is the pretraining model of run_pretraining.py: the encoder, then the
checkpoint's own `cls/predictions` head (dense + gelu, LayerNorm, the decoder
tied to `bert/embeddings/word_embeddings`, `output_bias`). A checkpoint without
that head (e.g. a fine-tuned classifier) is a one-line error naming the missing
variables.

Modes:
  * default: the `--top_k` most probable word pieces at each `[MASK]`.
  * `--mask_whole_words --num_pieces=N`: each `[MASK]` becomes N masks, filled
    left to right. The first piece is one of the `--top_k` most probable
    word-start tokens; each following piece is the most probable `##`
    continuation given the pieces already chosen (one forward pass per step).
    The candidates are ranked by the product of their piece probabilities.
  * `--score_sentences`: the pseudo-log-likelihood of each line (every piece
    masked in turn; the sum of the log-probabilities of the true pieces):
    `{"line_index", "text", "pll", "num_pieces"}`.

Lines: a line without `[MASK]` (fill modes), or a blank line, gets an output
line with `"masks": []` and an `"error"` text (in TSV it has no line; the log
counts them). A line longer than `--max_seq_length` word pieces (with `[CLS]`
and `[SEP]`) is cut: its output has `"truncated": true`, and masks past the cut
are listed with `"truncated": true` and no predictions.

Batching: the sequences of a window of `--bucket_window` are sorted by length
and padded per batch to `runner.bucket_length` (as extract_features does), so
memory stays bounded on inputs of any size; results are written in input order
as each window completes. A progress line with masks/s and an ETA is logged.
"""

import collections
import contextlib
import json
import os
import queue
import sys
import time

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import modeling
import run_pretraining
import runner
import tokenization

FLAGS = flags.FLAGS

MASK = "[MASK]"
OUTPUT_FORMATS = ("jsonl", "tsv")

# What each masked position may be filled with.
ANY_TOKEN, WORD_START, CONTINUATION = 0, 1, 2


def define_flags():
  """Defines the flags of run_fill_mask.py plus the shared runtime flags."""
  flags.DEFINE_string(
      "bert_config_file", None,
      "The config json file corresponding to the pre-trained BERT model. "
      "This specifies the model architecture.")
  flags.DEFINE_string("vocab_file", None,
                      "The vocabulary file that the BERT model was trained on.")
  flags.DEFINE_string(
      "init_checkpoint", None,
      "A checkpoint with the masked-LM head (cls/predictions/...): a "
      "run_pretraining.py checkpoint or a released bert_model.ckpt.")
  flags.DEFINE_bool(
      "do_lower_case", True,
      "Whether to lower case the input text. Should be True for uncased "
      "models and False for cased models.")
  flags.DEFINE_string(
      "input_file", None,
      "Text, one line per question with one or more [MASK] tokens (or, with "
      "--score_sentences, a sentence to score). '-' reads standard input.")
  flags.DEFINE_string("output_file", None,
                      "Output file ('-' writes standard output).")
  flags.DEFINE_integer("top_k", 5, "How many predictions to list per mask.")
  flags.DEFINE_integer(
      "max_seq_length", 128,
      "The maximum total input sequence length after WordPiece tokenization "
      "([CLS] and [SEP] included). Longer lines are cut (and said so).")
  flags.DEFINE_integer("predict_batch_size", 32,
                       "Sequences per forward pass.")
  flags.DEFINE_enum(
      "output_format", "jsonl", list(OUTPUT_FORMATS),
      "jsonl: one JSON object per input line. tsv: one line per mask "
      "(line_index, position, then token and probability for each of the "
      "top_k); with --score_sentences one line per input line (line_index, "
      "pll, num_pieces, text).")
  flags.DEFINE_bool(
      "mask_whole_words", False,
      "Predict whole words: each [MASK] becomes --num_pieces masks, filled "
      "left to right (a word-start piece, then ## continuations, each step "
      "conditioned on the pieces already chosen).")
  flags.DEFINE_integer(
      "num_pieces", 1,
      "With --mask_whole_words: how many word pieces each [MASK] word has.")
  flags.DEFINE_bool(
      "score_sentences", False,
      "Score each line by its pseudo-log-likelihood (mask each word piece in "
      "turn) instead of filling masks.")
  flags.DEFINE_integer(
      "bucket_window", 1024,
      "How many sequences are sorted by length and batched together; at most "
      "one window of results waits to be written.")
  runner.define_runtime_flags(iterations_per_loop=False,
                              save_checkpoints_steps=False)


# ------------------------------------------------------------------------------------
# Lines: text -> word pieces, the masks in them, and the cut at max_seq_length.
# ------------------------------------------------------------------------------------


class Line(object):
  """One input line as the model sees it.

  ids: [CLS] pieces [SEP] (cut to max_seq_length). masks: one list of piece
  positions per [MASK] of the text (num_pieces each with --mask_whole_words).
  live: the masks whose pieces all survive the cut.
  """

  def __init__(self, index, text):
    self.index = index
    self.text = text
    self.ids = []
    self.masks = []
    self.live = []
    self.truncated = False
    self.num_pieces = 0  # word pieces kept (without [CLS]/[SEP])
    self.error = None


def read_lines(input_file):
  """Yields (index, text) for each line of a file or of stdin ('-'), stripped."""
  if input_file == "-":
    stream = sys.stdin.buffer
    close = False
  else:
    stream = tf.io.gfile.GFile(input_file, "rb")
    close = True
  try:
    index = 0
    while True:
      raw = stream.readline()
      if not raw:
        break
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise common.UserError(
            f"--input_file={input_file}: line {index + 1} is not valid UTF-8 "
            f"({e.reason} at byte {e.start}); convert the file to UTF-8.")
      yield index, tokenization.convert_to_unicode(text).strip()
      index += 1
  finally:
    if close:
      stream.close()


def encode_line(index, text, tokenizer, max_seq_length, num_pieces=1,
                fill=True):
  """Tokenizes one line into a `Line` (each [MASK] becomes `num_pieces` masks)."""
  line = Line(index, text)
  vocab = tokenizer.vocab
  pieces = []
  for token in tokenizer.tokenize(text):
    if token == MASK and fill:
      line.masks.append(list(range(len(pieces) + 1,
                                   len(pieces) + 1 + num_pieces)))
      pieces.extend([vocab[MASK]] * num_pieces)
    else:
      pieces.append(vocab.get(token, vocab.get("[UNK]", 0)))
  room = max_seq_length - 2
  if len(pieces) > room:
    line.truncated = True
    pieces = pieces[:room]
  line.num_pieces = len(pieces)
  line.ids = [vocab["[CLS]"]] + pieces + [vocab["[SEP]"]]
  line.live = [m for m, positions in enumerate(line.masks)
               if positions[-1] <= room]
  if not text:
    line.error = "blank line"
  elif fill and not line.masks:
    line.error = "no [MASK] in the line"
  elif fill and not line.live:
    line.error = "every [MASK] is past max_seq_length"
  return line


# ------------------------------------------------------------------------------------
# The model: the pretraining model's encoder and masked-LM head, top-k in graph.
# ------------------------------------------------------------------------------------


class FillMaskTask(object):
  """Runner task: encoder + `cls/predictions` head at the requested positions.

  Features: input_ids, input_mask, segment_ids [B, S]; mask_positions,
  mask_kinds, target_ids [B, P]; query_index [B]. `predict` returns, per
  position, the top_k token ids and log-probabilities among the tokens its
  kind allows (the probabilities are of the full softmax), and the
  log-probability of `target_ids`.
  """

  def __init__(self, bert_config, top_k, options=None, word_start=None,
               continuation=None):
    self.bert_config = bert_config
    self.top_k = int(top_k)
    self.options = options or modeling.EncoderOptions()
    vocab_size = bert_config.vocab_size
    if word_start is None:
      word_start = np.ones([vocab_size], bool)
    if continuation is None:
      continuation = np.ones([vocab_size], bool)
    # Row k: which tokens a position of kind k may take.
    self.allowed = np.stack([np.ones([vocab_size], bool), word_start,
                             continuation])

  def create_model(self):
    return run_pretraining.PretrainingModel(self.bert_config,
                                            options=self.options)

  def compute_loss(self, model, features, training):
    raise ValueError("run_fill_mask only predicts: there is no loss.")

  def eval_metrics(self, model, features):
    raise ValueError("run_fill_mask only predicts: there are no metrics.")

  def predict(self, model, features):
    outputs = model.bert(features["input_ids"],
                         input_mask=features["input_mask"],
                         token_type_ids=features["segment_ids"], training=False)
    positions = features["mask_positions"]
    batch, slots = modeling.get_shape_list(positions, expected_rank=2)
    logits = run_pretraining.masked_lm_logits(
        model, outputs.sequence_output, model.bert.get_embedding_table(),
        positions)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    allowed = tf.gather(tf.constant(self.allowed),
                        tf.reshape(features["mask_kinds"], [-1]))
    ranked = tf.where(allowed, log_probs, tf.constant(-np.inf, tf.float32))
    top_log_probs, top_ids = tf.math.top_k(ranked, k=self.top_k)
    top_log_probs = tf.gather(log_probs, top_ids, batch_dims=1)
    targets = tf.reshape(features["target_ids"], [-1, 1])
    target_log_probs = tf.gather(log_probs, targets, batch_dims=1)
    return {
        "query_index": features["query_index"],
        "top_ids": tf.reshape(top_ids, [batch, slots, self.top_k]),
        "top_log_probs": tf.reshape(top_log_probs, [batch, slots, self.top_k]),
        "target_log_probs": tf.reshape(target_log_probs, [batch, slots]),
    }


def check_masked_lm_head(init_checkpoint, model):
  """Raises a one-line UserError when the loaded checkpoint lacked the head.

  Everything but `cls/seq_relationship` (next-sentence head, unused here) must
  have come from the checkpoint.
  """
  missing = [name for name in model.load_report.missing
             if not name.startswith("cls/seq_relationship/")]
  if not missing:
    return
  head = [n for n in missing if n.startswith("cls/predictions/")]
  what = "the masked-LM head" if head else "encoder variables"
  raise common.UserError(
      f"--init_checkpoint={init_checkpoint} lacks {what}: {len(missing)} "
      f"variables are missing ({', '.join(missing[:6])}"
      f"{' ...' if len(missing) > 6 else ''}). run_fill_mask.py needs a "
      "pretraining checkpoint (run_pretraining.py output or a released "
      "bert_model.ckpt), not a fine-tuned or encoder-only one.")


# ------------------------------------------------------------------------------------
# Queries: one sequence and the positions to predict in it.
# ------------------------------------------------------------------------------------


Query = collections.namedtuple("Query", ["ids", "positions", "kinds", "targets"])


def _pad_positions(count):
  """Position slots per batch: the next power of two (few distinct shapes)."""
  slots = 1
  while slots < count:
    slots *= 2
  return slots


def iter_batches(queries, batch_size, max_seq_length):
  """Numpy batches of `queries`, sorted by length and bucket-padded."""
  order = sorted(range(len(queries)), key=lambda i: len(queries[i].ids))
  for start in range(0, len(order), batch_size):
    index = order[start:start + batch_size]
    longest = max(len(queries[i].ids) for i in index)
    seq = runner.bucket_length(longest, max_seq_length)
    slots = _pad_positions(max(len(queries[i].positions) for i in index))
    batch = {
        "query_index": np.array(index, np.int64),
        "input_ids": np.zeros([len(index), seq], np.int32),
        "input_mask": np.zeros([len(index), seq], np.int32),
        "segment_ids": np.zeros([len(index), seq], np.int32),
        "mask_positions": np.zeros([len(index), slots], np.int32),
        "mask_kinds": np.zeros([len(index), slots], np.int32),
        "target_ids": np.zeros([len(index), slots], np.int32),
    }
    for row, i in enumerate(index):
      q = queries[i]
      batch["input_ids"][row, :len(q.ids)] = q.ids
      batch["input_mask"][row, :len(q.ids)] = 1
      n = len(q.positions)
      batch["mask_positions"][row, :n] = q.positions
      batch["mask_kinds"][row, :n] = q.kinds
      batch["target_ids"][row, :n] = q.targets
    yield batch


def input_fn_builder(batches):
  """An `input_fn` streaming the numpy batches of `batches()` via tf.data."""

  def input_fn(params):
    del params  # The batches are already formed.
    seq = tf.TensorSpec([None, None], tf.int32)
    signature = {
        "query_index": tf.TensorSpec([None], tf.int64),
        "input_ids": seq, "input_mask": seq, "segment_ids": seq,
        "mask_positions": seq, "mask_kinds": seq, "target_ids": seq,
    }
    return tf.data.Dataset.from_generator(
        batches, output_signature=signature).prefetch(2)

  return input_fn


class Predictor(object):
  """Runs lists of queries through ONE `runner.predict` stream (one model load).

  The stream's input generator waits for the next list of queries, so every
  window (and every step of --mask_whole_words, which needs the previous
  step's answers) goes through the same traced predict function: no retracing
  per window.
  """

  def __init__(self, cfg, task, model, batch_size, max_seq_length, progress):
    self.cfg = cfg
    self.task = task
    self.model = model
    self.batch_size = batch_size
    self.max_seq_length = max_seq_length
    self.progress = progress
    self.predicted = 0  # masked positions predicted so far
    self._requests = queue.Queue()
    self._stream = None

  def _batches(self):
    while True:
      queries = self._requests.get()
      if queries is None:
        return
      yield from iter_batches(queries, self.batch_size, self.max_seq_length)

  def run(self, queries):
    """Per query: (top_ids [n, k], top_probs [n, k], target_log_probs [n])."""
    if not queries:
      return []
    if self._stream is None:
      self._stream = runner.predict(self.cfg, self.task,
                                    input_fn_builder(self._batches),
                                    self.batch_size, model=self.model)
    self._requests.put(queries)
    results = [None] * len(queries)
    for _ in range(len(queries)):
      out = next(self._stream)
      i = int(out["query_index"])
      n = len(queries[i].positions)
      results[i] = (out["top_ids"][:n], np.exp(out["top_log_probs"][:n]),
                    out["target_log_probs"][:n].astype(np.float64))
      self.predicted += n
      self.progress.tick(self.predicted)
    return results

  def close(self):
    """Ends the input generator (it waits for queries otherwise)."""
    self._requests.put(None)
    if self._stream is not None:
      self._stream.close()
      self._stream = None


# ------------------------------------------------------------------------------------
# The three modes, each on a window of lines.
# ------------------------------------------------------------------------------------


def fill_window(lines, predictor, vocab_words):
  """Top-k pieces at each live [MASK]; returns one record per line."""
  queries, owners = [], []
  for line in lines:
    if line.error is None:
      positions = [line.masks[m][0] for m in line.live]
      queries.append(Query(line.ids, positions, [ANY_TOKEN] * len(positions),
                           [0] * len(positions)))
      owners.append(line)
  answers = dict(zip((l.index for l in owners), predictor.run(queries)))
  records = []
  for line in lines:
    predictions = {}
    if line.index in answers:
      top_ids, top_probs, _ = answers[line.index]
      for j, m in enumerate(line.live):
        predictions[m] = [
            {"token": vocab_words(t), "token_id": int(t),
             "probability": float(p)}
            for t, p in zip(top_ids[j], top_probs[j])]
    records.append(_fill_record(line, predictions))
  return records


def fill_whole_words_window(lines, predictor, vocab_words, num_pieces):
  """Whole words of `num_pieces` pieces at each live [MASK], left to right."""
  # Step 1: the top_k word-start pieces of every live mask.
  owners = [l for l in lines if l.error is None]
  queries = []
  for line in owners:
    positions = [line.masks[m][0] for m in line.live]
    queries.append(Query(line.ids, positions, [WORD_START] * len(positions),
                         [0] * len(positions)))
  first = predictor.run(queries)
  # Candidates: (line, mask, chosen ids, probabilities).
  candidates = []
  for line, (top_ids, top_probs, _) in zip(owners, first):
    for j, m in enumerate(line.live):
      for t, p in zip(top_ids[j], top_probs[j]):
        if predictor.task.allowed[WORD_START][t]:  # fewer than top_k exist
          candidates.append((line, m, [int(t)], [float(p)]))
  # Steps 2..N: each candidate's next piece, given the pieces chosen so far.
  for step in range(1, num_pieces):
    queries = []
    for line, m, chosen, _ in candidates:
      ids = list(line.ids)
      for position, token in zip(line.masks[m], chosen):
        ids[position] = token
      queries.append(Query(ids, [line.masks[m][step]], [CONTINUATION], [0]))
    for (_, _, chosen, probs), (top_ids, top_probs, _) in zip(
        candidates, predictor.run(queries)):
      chosen.append(int(top_ids[0][0]))
      probs.append(float(top_probs[0][0]))
  words = collections.defaultdict(list)
  for line, m, chosen, probs in candidates:
    pieces = [vocab_words(t) for t in chosen]
    words[(line.index, m)].append({
        "token": _join_pieces(pieces), "token_ids": chosen, "pieces": pieces,
        "probability": float(np.prod(probs))})
  records = []
  for line in lines:
    predictions = {}
    for m in line.live:
      ranked = sorted(words[(line.index, m)], key=lambda w: -w["probability"])
      predictions[m] = ranked
    records.append(_fill_record(line, predictions))
  return records


def score_window(lines, predictor, mask_id):
  """Pseudo-log-likelihood: each piece masked in turn, log p of the true piece."""
  queries, owners = [], []
  for line in lines:
    for position in range(1, line.num_pieces + 1):
      ids = list(line.ids)
      ids[position] = mask_id
      queries.append(Query(ids, [position], [ANY_TOKEN],
                           [line.ids[position]]))
      owners.append(line.index)
  pll = collections.defaultdict(float)
  for index, (_, _, target_log_probs) in zip(owners, predictor.run(queries)):
    pll[index] += float(target_log_probs[0])
  records = []
  for line in lines:
    record = {"line_index": line.index, "text": line.text,
              "pll": pll[line.index], "num_pieces": line.num_pieces}
    if line.truncated:
      record["truncated"] = True
    if not line.text:
      record["error"] = "blank line"
    records.append(record)
  return records


def _join_pieces(pieces):
  word = ""
  for piece in pieces:
    word += piece[2:] if piece.startswith("##") and word else piece
  return word


def _fill_record(line, predictions):
  record = {"line_index": line.index, "text": line.text, "masks": []}
  for m, positions in enumerate(line.masks):
    entry = {"position": positions[0]}
    if m in predictions:
      entry["predictions"] = predictions[m]
    else:
      entry["truncated"] = True
      entry["predictions"] = []
    record["masks"].append(entry)
  if line.truncated:
    record["truncated"] = True
  if line.error is not None:
    record["error"] = line.error
  return record


# ------------------------------------------------------------------------------------
# Output.
# ------------------------------------------------------------------------------------


def format_record(record, output_format):
  """The output text of one record (may be empty for TSV)."""
  if output_format == "jsonl":
    return json.dumps(record, ensure_ascii=False) + "\n"
  if "pll" in record:
    return "%d\t%.6f\t%d\t%s\n" % (record["line_index"], record["pll"],
                                   record["num_pieces"], record["text"])
  rows = []
  for mask in record["masks"]:
    cells = [str(record["line_index"]), str(mask["position"])]
    if mask.get("truncated"):
      cells.append("TRUNCATED")
    for p in mask["predictions"]:
      cells.extend([p["token"], "%.6f" % p["probability"]])
    rows.append("\t".join(cells) + "\n")
  return "".join(rows)


@contextlib.contextmanager
def open_output(output_file):
  """stdout for '-', else a file written atomically (nothing on failure)."""
  if output_file == "-":
    yield sys.stdout
    sys.stdout.flush()
  else:
    with common.atomic_write(output_file) as f:
      yield f


class _Progress(object):
  """A rate-limited progress line: lines written, masks/s, ETA."""

  def __init__(self, total_lines, interval_secs=10.0):
    self.clock = common.Progress(total_lines, interval_secs)
    self.total = total_lines
    self.lines = 0

  def tick(self, predicted):
    if not self.clock.due():
      return
    rate, _ = self.clock.measure(predicted)
    eta = None
    if self.total and self.lines:
      elapsed = self.clock.elapsed()
      eta = elapsed * (self.total - self.lines) / self.lines
    logging.info("%d%s lines done, %d masks predicted, %.1f masks/s%s",
                 self.lines, "/%d" % self.total if self.total else "",
                 predicted, rate,
                 ", ETA %s" % common.format_duration(eta) if eta else "")


# ------------------------------------------------------------------------------------
# The whole run.
# ------------------------------------------------------------------------------------


Stats = collections.namedtuple(
    "Stats", ["lines", "masks", "predicted", "skipped", "truncated", "seconds"])


def run(cfg, task, model, tokenizer, input_file, output_file, mode="fill",
        max_seq_length=128, batch_size=32, num_pieces=1, bucket_window=1024,
        output_format="jsonl", progress_secs=10.0):
  """Reads `input_file`, writes `output_file`; returns `Stats`.

  mode: "fill", "whole_words" or "score". The lines are handled in windows of
  about `bucket_window` sequences; each window's records are written in order
  before the next window is read.
  """
  progress = _Progress(common.count_lines(input_file), progress_secs)
  predictor = Predictor(cfg, task, model, batch_size, max_seq_length, progress)
  inv_vocab = tokenizer.inv_vocab
  vocab_words = lambda t: inv_vocab.get(int(t), "[%d]" % int(t))
  fill = mode != "score"
  pieces_per_mask = num_pieces if mode == "whole_words" else 1
  k = task.top_k

  def cost(line):
    """Sequences this line adds to a window."""
    if mode == "score":
      return line.num_pieces
    if line.error is not None:
      return 0
    return 1 + (len(line.live) * k * (num_pieces - 1)
                if mode == "whole_words" else 0)

  def process(window):
    if mode == "score":
      return score_window(window, predictor, tokenizer.vocab[MASK])
    if mode == "whole_words":
      return fill_whole_words_window(window, predictor, vocab_words, num_pieces)
    return fill_window(window, predictor, vocab_words)

  lines = masks = skipped = truncated = 0
  start = time.time()
  with contextlib.closing(predictor), open_output(output_file) as out:

    def flush(window):
      for record in process(window):
        out.write(format_record(record, output_format))
      progress.lines += len(window)

    window, window_cost = [], 0
    for index, text in read_lines(input_file):
      line = encode_line(index, text, tokenizer, max_seq_length,
                         pieces_per_mask, fill=fill)
      lines += 1
      masks += len(line.live) if fill else line.num_pieces
      skipped += line.error is not None
      if line.truncated:
        truncated += 1
        if truncated <= 3:
          logging.warning(
              "Line %d (line_index %d) has more than %d word pieces: cut at "
              "--max_seq_length=%d%s.", index + 1, index, max_seq_length - 2,
              max_seq_length,
              "" if not fill or len(line.live) == len(line.masks) else
              "; %d [MASK] past the cut get no predictions" %
              (len(line.masks) - len(line.live)))
      window.append(line)
      window_cost += cost(line)
      if window_cost >= bucket_window:
        flush(window)
        window, window_cost = [], 0
    if window:
      flush(window)
  seconds = time.time() - start
  stats = Stats(lines, masks, predictor.predicted, skipped, truncated, seconds)
  if lines == 0:
    logging.warning("--input_file=%s is empty: the output is empty.", input_file)
  if skipped:
    logging.warning("%d of %d lines %s.", skipped, lines,
                    "are blank" if mode == "score" else
                    "have no [MASK] to fill (or only past the cut); their "
                    "JSON lines carry an \"error\"" if output_format == "jsonl"
                    else "have no [MASK] to fill (or only past the cut) and no "
                    "TSV line")
  if truncated:
    logging.warning("%d lines were cut at --max_seq_length=%d.", truncated,
                    max_seq_length)
  logging.info("Done: %d lines, %d %s, %d masked positions predicted in %.1f s: "
               "%.1f masks/s.", lines, masks,
               "pieces scored" if mode == "score" else "[MASK]s filled",
               predictor.predicted, seconds,
               predictor.predicted / max(seconds, 1e-9))
  return stats


def word_kinds(tokenizer, vocab_size):
  """Boolean [vocab_size] masks: word-start tokens and ## continuations."""
  word_start = np.zeros([vocab_size], bool)
  continuation = np.zeros([vocab_size], bool)
  for token, i in tokenizer.vocab.items():
    if i >= vocab_size:
      continue
    if token.startswith("##") and len(token) > 2:
      continuation[i] = True
    elif not (token.startswith("[") and token.endswith("]")):
      word_start[i] = True
  return word_start, continuation


def _require_file(flag, path):
  if not path:
    raise common.UserError(f"--{flag} is required.")
  if not tf.io.gfile.exists(path):
    raise common.UserError(f"--{flag}={path}: file not found.")
  if tf.io.gfile.isdir(path):
    raise common.UserError(f"--{flag}={path} is a directory; expected a file.")


def check_options(bert_config, tokenizer):
  """One-line errors for flag values and files that cannot work together."""
  if FLAGS.top_k < 1:
    raise common.UserError(f"--top_k={FLAGS.top_k} must be at least 1.")
  if FLAGS.top_k > bert_config.vocab_size:
    raise common.UserError(
        f"--top_k={FLAGS.top_k} is larger than the vocabulary "
        f"({bert_config.vocab_size} tokens).")
  if FLAGS.predict_batch_size < 1:
    raise common.UserError(
        f"--predict_batch_size={FLAGS.predict_batch_size} must be at least 1.")
  if FLAGS.num_pieces < 1:
    raise common.UserError(f"--num_pieces={FLAGS.num_pieces} must be at least 1.")
  if FLAGS.num_pieces > 1 and not FLAGS.mask_whole_words:
    raise common.UserError(
        f"--num_pieces={FLAGS.num_pieces} needs --mask_whole_words.")
  if FLAGS.score_sentences and FLAGS.mask_whole_words:
    raise common.UserError(
        "--score_sentences and --mask_whole_words are two different modes: "
        "pass one of them.")
  minimum = 2 + (FLAGS.num_pieces if FLAGS.mask_whole_words else 1)
  if FLAGS.max_seq_length < minimum:
    raise common.UserError(
        f"--max_seq_length={FLAGS.max_seq_length} is too small: [CLS] "
        f"[MASK] [SEP] needs at least {minimum}.")
  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise common.UserError(
        f"Cannot use sequence length {FLAGS.max_seq_length} because the BERT "
        "model was only trained up to sequence length "
        f"{bert_config.max_position_embeddings} (max_position_embeddings): "
        "lower --max_seq_length.")
  for token in ("[CLS]", "[SEP]", MASK):
    if token not in tokenizer.vocab:
      raise common.UserError(
          f"--vocab_file={FLAGS.vocab_file} has no {token} token: is it a BERT "
          "vocabulary?")
  if len(tokenizer.vocab) > bert_config.vocab_size:
    raise common.UserError(
        f"--vocab_file={FLAGS.vocab_file} has {len(tokenizer.vocab)} tokens but "
        f"the model's vocab_size is {bert_config.vocab_size} "
        f"(--bert_config_file={FLAGS.bert_config_file}): they belong to "
        "different models.")
  if FLAGS.output_file != "-":
    directory = os.path.dirname(FLAGS.output_file)
    if directory and not tf.io.gfile.isdir(directory):
      raise common.UserError(
          f"--output_file={FLAGS.output_file}: directory {directory} does not "
          "exist.")


def main(_):
  _require_file("bert_config_file", FLAGS.bert_config_file)
  _require_file("vocab_file", FLAGS.vocab_file)
  if not FLAGS.init_checkpoint:
    raise common.UserError("--init_checkpoint is required.")
  if not FLAGS.input_file or not FLAGS.output_file:
    raise common.UserError("--input_file and --output_file are required "
                           "('-' for stdin/stdout).")
  if FLAGS.input_file != "-":
    _require_file("input_file", FLAGS.input_file)
  init_checkpoint = checkpoints.normalize_checkpoint_path(FLAGS.init_checkpoint)
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                init_checkpoint)

  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
      never_split=[MASK])
  check_options(bert_config, tokenizer)

  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=None)
  word_start, continuation = word_kinds(tokenizer, bert_config.vocab_size)
  task = FillMaskTask(bert_config, FLAGS.top_k, options=cfg.encoder_options,
                      word_start=word_start, continuation=continuation)
  model, _, _ = runner.load_model(cfg, task, init_checkpoint=init_checkpoint)
  check_masked_lm_head(init_checkpoint, model)

  mode = ("score" if FLAGS.score_sentences else
          "whole_words" if FLAGS.mask_whole_words else "fill")
  run(cfg, task, model, tokenizer, FLAGS.input_file, FLAGS.output_file,
      mode=mode, max_seq_length=FLAGS.max_seq_length,
      batch_size=FLAGS.predict_batch_size, num_pieces=FLAGS.num_pieces,
      bucket_window=FLAGS.bucket_window, output_format=FLAGS.output_format)


if __name__ == "__main__":
  define_flags()
  app.run(common.main_wrapper(main))
