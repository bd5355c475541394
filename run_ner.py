# coding=utf-8
# Copyright 2026 The BERT-on-TF2 project authors. Written for this project.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""BERT finetuning runner for token classification (named-entity recognition).

Built like `run_classifier.py`: the same flags where they mean the same thing,
the shared loop of `runner.py`, checkpoints in the original naming.

  * Data: `--data_dir` holds `train.txt`, `dev.txt` and `test.txt` (or
    `train.conll`, `dev.conll`, `test.conll`) in CoNLL form: one token per
    line, its tag in the last column, a blank line between sentences,
    `-DOCSTART-` lines skipped. `test` may carry no tags.
  * Labels: read from the training file (or `--labels`) and saved as
    `label_list.txt` beside the checkpoints.
  * Word pieces: the first piece of each word carries the word's label; the
    other pieces and [CLS]/[SEP] are masked out of the loss and the metrics. A
    sentence longer than `max_seq_length` is cut into windows `--doc_stride`
    pieces apart, and each word is predicted once, from the window where it
    has the most context.
  * Head: dropout 0.1 and one dense layer over the sequence output
    (`output_weights` [num_labels, hidden], `output_bias` [num_labels]),
    softmax cross-entropy over the first pieces.
  * Outputs: `eval_results.txt` (entity-level `eval_precision`, `eval_recall`,
    `eval_f1` as CoNLL's `conlleval` counts them, `eval_accuracy` on words,
    `eval_loss`, `global_step`), `eval_predictions.txt` and
    `test_predictions.txt` (`token gold predicted` lines, the file conlleval
    reads; `token predicted` when the file has no tags), and
    `test_results.txt` when the test file has tags.
"""

import collections
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import common
import modeling
import run_classifier
import runner
import tokenization

FLAGS = flags.FLAGS

LABEL_LIST_FILE = "label_list.txt"


_define = runner.define_flag


def define_flags():
  """Defines the flags of this script (idempotent)."""
  if "bio_constrained_decoding" in FLAGS:
    return

  ## Required parameters
  _define(flags.DEFINE_string, "data_dir", None,
          "The input data dir, holding train.txt, dev.txt and test.txt in "
          "CoNLL form (one token per line, the tag in the last column, "
          "columns separated by a tab or spaces, a blank line between "
          "sentences). When a .txt file is absent the .conll file of the same "
          "name is read (train.conll, dev.conll, test.conll).")
  runner.define_finetuning_flags(max_seq_length_help=(
      "The maximum total input sequence length after WordPiece tokenization. "
      "Longer sentences are split into windows (see --doc_stride); shorter "
      "ones are padded."))

  ## New parameters of this script
  _define(flags.DEFINE_integer, "doc_stride", 64,
          "When a sentence has more word pieces than fit in max_seq_length, "
          "how many pieces apart its windows start. Each word is predicted "
          "once, from the window where it has the most context.")
  _define(flags.DEFINE_list, "labels", None,
          "Comma-separated tag set (e.g. O,B-PER,I-PER). Default: the tags of "
          "the training file (--do_train), else the label_list.txt saved in "
          "output_dir or beside --init_checkpoint.")
  _define(flags.DEFINE_bool, "bio_constrained_decoding", False,
          "Decode each sentence with Viterbi over the word-level "
          "log-probabilities, allowing I-X only after B-X or I-X (instead of "
          "each word's most likely tag on its own).")
  _define(flags.DEFINE_bool, "dynamic_padding", True,
          "Pad each batch only to its longest example (rounded up by "
          "runner.bucket_length) in training, eval and predict: short "
          "sentences cost less, same math. One device only (not on TPU or "
          "across several replicas). --nodynamic_padding pads every batch "
          "to --max_seq_length.")


# ----------------------------------------------------------------------------
# Data: CoNLL files.
# ----------------------------------------------------------------------------


class Sentence(object):
  """One sentence: its words, their tags (None when untagged), line numbers."""

  def __init__(self, words, tags, line_numbers, path):
    self.words = words
    self.tags = tags
    self.line_numbers = line_numbers
    self.path = path

  def __repr__(self):
    return "Sentence(%r, %r)" % (self.words, self.tags)


def _columns(line):
  """A line's columns: tab-separated when it has a tab, else space-separated."""
  parts = line.split("\t") if "\t" in line else line.split(" ")
  return [p.strip() for p in parts if p.strip()]


def read_conll(path, require_tags=True):
  """Reads a CoNLL file into a list of `Sentence`s.

  The token is the first column and the tag the last; blank (or
  whitespace-only) lines end a sentence; `-DOCSTART-` lines are skipped. With
  `require_tags=False` a file whose lines hold only tokens is accepted (its
  sentences have `tags=None`); the first token line decides which kind the
  file is.

  Raises:
    common.UserError: the file is missing or holds no sentence, or a line has
      no tag (naming the file and line).
  """
  if not tf.io.gfile.exists(path):
    raise common.UserError("%s not found" % path)
  sentences = []
  words, tags, lines = [], [], []
  tagged = None

  def flush():
    if words:
      sentences.append(Sentence(list(words), list(tags) if tagged else None,
                                list(lines), path))
      del words[:], tags[:], lines[:]

  with tf.io.gfile.GFile(path, "r") as f:
    for line_number, line in enumerate(f, start=1):
      columns = _columns(line.rstrip("\r\n"))
      if not columns:
        flush()
        continue
      if columns[0] == "-DOCSTART-":
        flush()
        continue
      if tagged is None:
        tagged = require_tags or len(columns) > 1
      if tagged and len(columns) < 2:
        raise common.UserError(
            "%s:%d: the token %r has no tag: each line needs the token and "
            "its tag (the last column), separated by a tab or spaces" %
            (path, line_number, columns[0]))
      if not tagged and len(columns) > 1:
        raise common.UserError(
            "%s:%d: this line has %d columns but the file's first token line "
            "has one (no tag): give every line a tag, or none" %
            (path, line_number, len(columns)))
      words.append(columns[0])
      tags.append(columns[-1])
      lines.append(line_number)
  flush()
  if not sentences:
    raise common.UserError("%s holds no sentence (empty file?)" % path)
  return sentences


def data_file(data_dir, split):
  """`<split>.txt` in data_dir, else `<split>.conll`."""
  for ext in (".txt", ".conll"):
    path = os.path.join(data_dir, split + ext)
    if tf.io.gfile.exists(path):
      return path
  raise common.UserError("--data_dir=%s has neither %s.txt nor %s.conll" %
                         (data_dir, split, split))


def labels_from_sentences(sentences):
  """The tag set of some tagged sentences: "O" first, then sorted.

  BIO pairs are completed: with B-X (or I-X) seen, both B-X and I-X are
  labels, so that a type whose entities are all one word long in training
  can still be evaluated on longer ones.
  """
  tags = {t for s in sentences for t in s.tags}
  for tag in list(tags):
    if tag[:2] in ("B-", "I-"):
      tags.update(("B-" + tag[2:], "I-" + tag[2:]))
  return (["O"] if "O" in tags else []) + sorted(tags - {"O"})


def check_tags(sentences, label_list, where):
  """Stops at the first tag outside `label_list`, naming the file and line."""
  known = set(label_list)
  for sentence in sentences:
    if sentence.tags is None:
      continue
    for tag, line in zip(sentence.tags, sentence.line_numbers):
      if tag not in known:
        raise common.UserError(
            "%s:%d: tag %r is not in the label list (%s, %s): it never "
            "occurs in the training data. Add it with --labels, or fix the "
            "file" % (sentence.path, line, tag, ", ".join(label_list), where))


# ----------------------------------------------------------------------------
# Features: word pieces, windows and the first-piece labels.
# ----------------------------------------------------------------------------


class InputFeatures(object):
  """One window of one sentence.

  `label_mask` is 1 where a word is scored (its first piece, in the window
  chosen for it); `word_index` gives that word's index there (-1 elsewhere).
  """

  def __init__(self, sentence_index, input_ids, input_mask, segment_ids,
               label_ids, label_mask, word_index):
    self.sentence_index = sentence_index
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_ids = label_ids
    self.label_mask = label_mask
    self.word_index = word_index


def word_pieces(words, tokenizer):
  """Each word's word pieces; a word with none (e.g. control characters
  only) becomes [UNK], so that every word gets a prediction."""
  pieces = []
  for word in words:
    tokens = tokenizer.tokenize(word)
    pieces.append(tokens if tokens else ["[UNK]"])
  return pieces


def plan_windows(num_pieces, max_pieces, stride):
  """(start, length) of each window over `num_pieces` pieces.

  One window when they fit; else windows `stride` pieces apart (at most
  `max_pieces` apart, so that no piece is skipped) until the last piece is
  covered.
  """
  stride = max(1, min(stride, max_pieces))
  windows = []
  start = 0
  while True:
    length = min(max_pieces, num_pieces - start)
    windows.append((start, length))
    if start + length >= num_pieces:
      return windows
    start += stride


def best_window(position, windows):
  """The index of the window where `position` has the most context.

  Context is the smaller of the pieces to its left and to its right in the
  window (plus a hundredth of the window length); ties go to the earlier
  window.
  """
  best, best_score = None, None
  for index, (start, length) in enumerate(windows):
    end = start + length - 1
    if not start <= position <= end:
      continue
    score = min(position - start, end - position) + 0.01 * length
    if best_score is None or score > best_score:
      best, best_score = index, score
  return best


def convert_sentence(sentence_index, sentence, label_map, max_seq_length,
                     doc_stride, tokenizer):
  """The `InputFeatures` of one sentence (one per window)."""
  pieces_per_word = word_pieces(sentence.words, tokenizer)
  pieces, first_piece_of = [], []
  for pieces_of_word in pieces_per_word:
    first_piece_of.append(len(pieces))
    pieces.extend(pieces_of_word)
  windows = plan_windows(len(pieces), max_seq_length - 2, doc_stride)
  owner = [best_window(p, windows) for p in first_piece_of]

  features = []
  for index, (start, length) in enumerate(windows):
    tokens = ["[CLS]"] + pieces[start:start + length] + ["[SEP]"]
    label_ids = [0] * len(tokens)
    label_mask = [0] * len(tokens)
    word_index = [-1] * len(tokens)
    for w, p in enumerate(first_piece_of):
      if owner[w] == index:
        position = p - start + 1
        label_mask[position] = 1
        word_index[position] = w
        if sentence.tags is not None:
          label_ids[position] = label_map[sentence.tags[w]]
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    input_mask = [1] * len(input_ids)
    padding = max_seq_length - len(input_ids)
    features.append(InputFeatures(
        sentence_index, input_ids + [0] * padding, input_mask + [0] * padding,
        [0] * max_seq_length, label_ids + [0] * padding,
        label_mask + [0] * padding, word_index + [-1] * padding))
  return features


def convert_sentences(sentences, label_list, max_seq_length, doc_stride,
                      tokenizer):
  """All windows of all sentences, in order."""
  if max_seq_length < 3:
    raise common.UserError("--max_seq_length=%d leaves no room for a word "
                           "piece besides [CLS] and [SEP]" % max_seq_length)
  label_map = {label: i for i, label in enumerate(label_list)}
  features = []
  for index, sentence in enumerate(sentences):
    features.extend(convert_sentence(index, sentence, label_map,
                                     max_seq_length, doc_stride, tokenizer))
  split = len(features) - len(sentences)
  if split:
    logging.info("%d windows for %d sentences (the longer sentences are split "
                 "into windows %d pieces apart)", len(features), len(sentences),
                 doc_stride)
  return features


_FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "label_ids",
                  "label_mask")


def write_features(features, output_file):
  """Writes the features as a TFRecord file (atomically)."""

  def int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

  with common.atomic_path(output_file) as tmp:
    with tf.io.TFRecordWriter(tmp) as writer:
      for feature in features:
        example = tf.train.Example(features=tf.train.Features(feature={
            name: int_feature(getattr(feature, name))
            for name in _FEATURE_NAMES}))
        writer.write(example.SerializeToString())


def _cut_to_bucket(features, max_seq_length):
  """Cuts a batch's sequence features to `runner.bucket_length` of its
  longest example (looked up in a table, so the pipeline stays pure TF)."""
  table = tf.constant([runner.bucket_length(max(1, n), max_seq_length)
                       for n in range(max_seq_length + 1)], dtype=tf.int32)
  longest = tf.reduce_max(tf.reduce_sum(features["input_mask"], axis=1))
  cut = tf.gather(table, longest)
  return {name: t[:, :cut] for name, t in features.items()}


def file_based_input_fn_builder(input_file, seq_length, is_training,
                                drop_remainder, dynamic_padding=False):
  """An `input_fn` over a TFRecord file of `write_features`."""
  name_to_features = {name: tf.io.FixedLenFeature([seq_length], tf.int64)
                      for name in _FEATURE_NAMES}

  def input_fn(params):
    d = tf.data.TFRecordDataset(input_file)
    d = runner.shard_for_context(d, params.get("input_context"))
    if is_training:
      d = d.repeat()
      d = d.shuffle(buffer_size=1000)
    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=tf.data.AUTOTUNE)
    d = d.batch(params["batch_size"], drop_remainder=drop_remainder)
    if dynamic_padding:
      d = d.map(lambda f: _cut_to_bucket(f, seq_length))
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


# ----------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------


class NerModel(run_classifier.ClassifierModel):
  """BERT plus a token classification head: the classifier's head variables
  (`output_weights` [num_labels, hidden], truncated normal 0.02, and
  `output_bias` [num_labels], zeros) applied to every position's sequence
  output instead of the pooled one."""

  def logits(self, input_ids, input_mask, segment_ids, training=False):
    """[batch, seq_length, num_labels] float32 logits."""
    sequence_output = self.bert(
        input_ids, input_mask=input_mask, token_type_ids=segment_ids,
        training=training).sequence_output
    sequence_output = tf.cast(sequence_output, tf.float32)
    if training:
      sequence_output = tf.nn.dropout(sequence_output, rate=0.1)
    logits = tf.einsum("bsh,nh->bsn", sequence_output, self.output_weights)
    return tf.nn.bias_add(logits, self.output_bias)


def token_loss(logits, label_ids, label_mask, num_labels):
  """(mean loss over the scored tokens, per-token loss [batch, seq])."""
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot = tf.one_hot(label_ids, depth=num_labels, dtype=tf.float32)
  mask = tf.cast(label_mask, tf.float32)
  per_token = -tf.reduce_sum(one_hot * log_probs, axis=-1) * mask
  loss = tf.reduce_sum(per_token) / tf.maximum(tf.reduce_sum(mask), 1.0)
  return loss, per_token


_no_autograph = tf.autograph.experimental.do_not_convert


class NerTask(object):
  """Token classification for the shared loop (runner.py's task protocol)."""

  sequence_features = _FEATURE_NAMES

  def __init__(self, bert_config, label_list, options=None):
    self.bert_config = bert_config
    self.label_list = list(label_list)
    self.num_labels = len(self.label_list)
    self.options = options

  def create_model(self):
    return NerModel(self.bert_config, self.num_labels, options=self.options)

  def _logits(self, model, features, training):
    return model.logits(features["input_ids"], features["input_mask"],
                        features["segment_ids"], training=training)

  @_no_autograph
  def compute_loss(self, model, features, training):
    loss, _ = token_loss(self._logits(model, features, training),
                         features["label_ids"], features["label_mask"],
                         self.num_labels)
    return loss, {}

  @_no_autograph
  def eval_metrics(self, model, features):
    logits = self._logits(model, features, False)
    _, per_token = token_loss(logits, features["label_ids"],
                              features["label_mask"], self.num_labels)
    mask = tf.cast(features["label_mask"], tf.float32)
    predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predictions, features["label_ids"]), tf.float32)
    count = tf.reduce_sum(mask)
    return {"eval_loss": (tf.reduce_sum(per_token), count),
            "eval_accuracy": (tf.reduce_sum(correct * mask), count)}

  @_no_autograph
  def predict(self, model, features):
    return {"log_probs": tf.nn.log_softmax(
        self._logits(model, features, False), axis=-1)}


# ----------------------------------------------------------------------------
# Decoding: per-word log-probabilities back to tags.
# ----------------------------------------------------------------------------


def collect_word_log_probs(sentences, features, results):
  """Per sentence, the [num_words, num_labels] log-probabilities.

  Each word is read from the one window that scores it; a word that no
  window scores, or two windows do, is an internal error.
  """
  words = [[None] * len(s.words) for s in sentences]
  for feature, result in zip(features, results):
    if feature.sentence_index < 0:  # TPU padding.
      continue
    log_probs = result["log_probs"]
    row = words[feature.sentence_index]
    for position, w in enumerate(feature.word_index):
      if w < 0:
        continue
      if row[w] is not None:
        raise AssertionError("word %d of sentence %d scored twice" %
                             (w, feature.sentence_index))
      row[w] = np.asarray(log_probs[position], dtype=np.float64)
  out = []
  for index, row in enumerate(words):
    missing = [w for w, v in enumerate(row) if v is None]
    if missing:
      raise AssertionError("sentence %d: words %s got no prediction" %
                           (index, missing))
    out.append(np.stack(row))
  return out


def bio_transitions(label_list):
  """(allowed [N, N] from->to, allowed_at_start [N]) of the BIO scheme.

  I-X may only follow B-X or I-X (and may not start a sentence); every other
  move is allowed.
  """
  n = len(label_list)
  allowed = np.ones([n, n], dtype=bool)
  start = np.ones([n], dtype=bool)
  for j, tag in enumerate(label_list):
    if tag.startswith("I-"):
      start[j] = False
      entity = tag[2:]
      for i, prev in enumerate(label_list):
        allowed[i, j] = prev in ("B-" + entity, "I-" + entity)
  return allowed, start


def viterbi_decode(log_probs, allowed, start):
  """The best tag sequence (ids) of `log_probs` [T, N] under the transitions."""
  blocked = -1e30
  score = np.where(start, log_probs[0], blocked)
  back = []
  step = np.where(allowed, 0.0, blocked)
  for t in range(1, len(log_probs)):
    total = score[:, None] + step  # [from, to]
    back.append(np.argmax(total, axis=0))
    score = total.max(axis=0) + log_probs[t]
  best = [int(np.argmax(score))]
  for pointers in reversed(back):
    best.append(int(pointers[best[-1]]))
  return best[::-1]


def decode(word_log_probs, label_list, bio_constrained=False):
  """Tags per sentence from `collect_word_log_probs`'s arrays."""
  if bio_constrained:
    allowed, start = bio_transitions(label_list)
    ids = [viterbi_decode(lp, allowed, start) for lp in word_log_probs]
  else:
    ids = [list(np.argmax(lp, axis=-1)) for lp in word_log_probs]
  return [[label_list[i] for i in row] for row in ids]


# ----------------------------------------------------------------------------
# conlleval: entity-level precision, recall and F1.
# ----------------------------------------------------------------------------


def split_tag(tag):
  """'B-person' -> ('B', 'person'); 'O' -> ('O', ''). Types may hold '-'."""
  prefix, dash, kind = tag.partition("-")
  return (prefix, kind) if dash else (tag, "")


def chunk_ends(prev_tag, tag, prev_type, kind):
  """conlleval's endOfChunk: did a chunk end between the previous word and
  this one?"""
  if prev_tag in ("B", "I") and tag in ("B", "O"):
    return True
  if prev_tag == "E" and tag in ("E", "I", "O"):
    return True
  if prev_tag not in ("O", ".") and prev_type != kind:
    return True
  return prev_tag in ("[", "]")


def chunk_starts(prev_tag, tag, prev_type, kind):
  """conlleval's startOfChunk: did a chunk start at this word?"""
  if tag == "B" and prev_tag in ("B", "I", "O"):
    return True
  if tag == "I" and prev_tag in ("O", "E"):
    return True
  if tag == "E" and prev_tag in ("E", "O"):
    return True
  if tag not in ("O", ".") and prev_type != kind:
    return True
  return tag in ("[", "]")


class ConllCounts(object):
  """conlleval's counts: chunks found in gold and guessed, correct chunks
  (overall and per type), correct tags and words."""

  def __init__(self):
    self.correct_chunks = collections.Counter()
    self.gold_chunks = collections.Counter()
    self.guessed_chunks = collections.Counter()
    self.correct_tags = 0
    self.words = 0
    # The stream's state: the previous word's tags and whether the chunk
    # being read is correct so far.
    self._last = ("O", "", "O", "")
    self._in_correct = False

  def add_sentence(self, gold_tags, guessed_tags):
    """Counts one sentence and the sentence break after it (an "O" word for
    both, as conlleval reads a blank line)."""
    if len(gold_tags) != len(guessed_tags):
      raise ValueError("%d gold tags but %d guessed" %
                       (len(gold_tags), len(guessed_tags)))
    for gold_tag, guessed_tag in zip(gold_tags, guessed_tags):
      self._add_word(split_tag(gold_tag), split_tag(guessed_tag), True)
    self._add_word(("O", ""), ("O", ""), False)

  def _add_word(self, gold_split, guess_split, is_word):
    gold, gold_type = gold_split
    guess, guess_type = guess_split
    last_gold, last_gold_type, last_guess, last_guess_type = self._last
    gold_end = chunk_ends(last_gold, gold, last_gold_type, gold_type)
    guess_end = chunk_ends(last_guess, guess, last_guess_type, guess_type)
    gold_start = chunk_starts(last_gold, gold, last_gold_type, gold_type)
    guess_start = chunk_starts(last_guess, guess, last_guess_type, guess_type)
    if self._in_correct:
      if gold_end and guess_end and last_gold_type == last_guess_type:
        self._in_correct = False
        self.correct_chunks[last_gold_type] += 1
      elif gold_end != guess_end or gold_type != guess_type:
        self._in_correct = False
    if gold_start and guess_start and gold_type == guess_type:
      self._in_correct = True
    if gold_start:
      self.gold_chunks[gold_type] += 1
    if guess_start:
      self.guessed_chunks[guess_type] += 1
    if is_word:
      self.words += 1
      if gold == guess and gold_type == guess_type:
        self.correct_tags += 1
    self._last = (gold, gold_type, guess, guess_type)

  def finish(self):
    """The end of the input ends the chunk being read (conlleval's EOF)."""
    if self._in_correct:
      self._in_correct = False
      self.correct_chunks[self._last[1]] += 1
    return self

  def scores(self, kind=None):
    """(precision, recall, f1) in [0, 1] overall (`kind=None`) or for a type."""
    def total(counter):
      return sum(counter.values()) if kind is None else counter[kind]
    correct = total(self.correct_chunks)
    guessed = total(self.guessed_chunks)
    gold = total(self.gold_chunks)
    precision = correct / guessed if guessed else 0.0
    recall = correct / gold if gold else 0.0
    f1 = (2 * precision * recall / (precision + recall)
          if precision + recall else 0.0)
    return precision, recall, f1

  @property
  def accuracy(self):
    return self.correct_tags / self.words if self.words else 0.0

  def types(self):
    return sorted(set(self.gold_chunks) | set(self.guessed_chunks))

  def table(self):
    """conlleval's report: the overall line, then one line per type."""
    precision, recall, f1 = self.scores()
    lines = [
        "processed %d tokens with %d phrases; found: %d phrases; correct: %d."
        % (self.words, sum(self.gold_chunks.values()),
           sum(self.guessed_chunks.values()),
           sum(self.correct_chunks.values())),
        "accuracy: %6.2f%%; precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f"
        % (100 * self.accuracy, 100 * precision, 100 * recall, 100 * f1)]
    for kind in self.types():
      precision, recall, f1 = self.scores(kind)
      lines.append("%17s: precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f  %d"
                   % (kind, 100 * precision, 100 * recall, 100 * f1,
                      self.guessed_chunks[kind]))
    return lines


def conll_counts(gold_sentences, guessed_sentences):
  """`ConllCounts` of lists of tag lists (one per sentence)."""
  counts = ConllCounts()
  for gold, guessed in zip(gold_sentences, guessed_sentences):
    counts.add_sentence(gold, guessed)
  return counts.finish()


# ----------------------------------------------------------------------------
# Running a split.
# ----------------------------------------------------------------------------


def prediction_lines(sentences, predicted):
  """`token gold predicted` (or `token predicted`) lines, a blank line
  between sentences: the input conlleval reads."""
  lines = []
  for index, (sentence, tags) in enumerate(zip(sentences, predicted)):
    if index:
      lines.append("\n")
    for w, word in enumerate(sentence.words):
      fields = [word] if sentence.tags is None else [word, sentence.tags[w]]
      lines.append(" ".join(fields + [tags[w]]) + "\n")
  return lines


def _pad_for_tpu(features, batch_size, use_tpu):
  """On TPU, pads the windows to a multiple of the batch (unscored)."""
  features = list(features)
  if use_tpu:
    template = features[0]
    while len(features) % batch_size:
      features.append(InputFeatures(
          -1, [0] * len(template.input_ids), [0] * len(template.input_ids),
          [0] * len(template.input_ids), [0] * len(template.input_ids),
          [0] * len(template.input_ids), [-1] * len(template.input_ids)))
  return features


def predict_split(cfg, task, model, sentences, name, batch_size, tokenizer):
  """Runs the model over some sentences; returns per-word log-probs."""
  features = convert_sentences(sentences, task.label_list,
                               FLAGS.max_seq_length, FLAGS.doc_stride,
                               tokenizer)
  features = _pad_for_tpu(features, batch_size, cfg.use_tpu)
  record_file = os.path.join(FLAGS.output_dir, name + ".tf_record")
  write_features(features, record_file)
  logging.info("***** Running %s *****", name)
  logging.info("  Num sentences = %d, windows = %d", len(sentences),
               len(features))
  logging.info("  Batch size = %d", batch_size)
  input_fn = file_based_input_fn_builder(
      record_file, FLAGS.max_seq_length, is_training=False,
      drop_remainder=bool(cfg.use_tpu))
  results = runner.predict(cfg, task, input_fn, batch_size, model=model,
                           dynamic_padding=bool(FLAGS.dynamic_padding and
                                                not cfg.use_tpu))
  return collect_word_log_probs(sentences, features, results)


def score_split(sentences, word_log_probs, predicted, label_list, prefix,
                global_step):
  """The results dict (`<prefix>_precision` ...) and logs conlleval's table."""
  label_map = {label: i for i, label in enumerate(label_list)}
  counts = conll_counts([s.tags for s in sentences], predicted)
  gold_log_probs = [lp[np.arange(len(s.tags)), [label_map[t] for t in s.tags]]
                    for s, lp in zip(sentences, word_log_probs)]
  loss = -float(np.mean(np.concatenate(gold_log_probs)))
  precision, recall, f1 = counts.scores()
  logging.info("***** %s: entities by type (conlleval) *****", prefix)
  for line in counts.table():
    logging.info("  %s", line)
  return collections.OrderedDict([
      (prefix + "_precision", np.float32(precision)),
      (prefix + "_recall", np.float32(recall)),
      (prefix + "_f1", np.float32(f1)),
      (prefix + "_accuracy", np.float32(counts.accuracy)),
      (prefix + "_loss", np.float32(loss)),
      ("global_step", np.int64(global_step)),
  ])


# ----------------------------------------------------------------------------
# main.
# ----------------------------------------------------------------------------


def _read_label_file(path):
  with tf.io.gfile.GFile(path, "r") as f:
    return [line.strip() for line in f if line.strip()]


def resolve_labels(train_sentences, init_checkpoint):
  """The label list and where it came from (see --labels)."""
  if FLAGS.labels:
    labels = [l.strip() for l in FLAGS.labels if l.strip()]
    if len(set(labels)) != len(labels):
      raise common.UserError("--labels has a label twice: %s" %
                             ",".join(labels))
    return labels, "from --labels"
  if train_sentences is not None:
    return labels_from_sentences(train_sentences), "from the training file"
  candidates = [os.path.join(FLAGS.output_dir, LABEL_LIST_FILE)]
  if init_checkpoint:
    candidates.append(os.path.join(os.path.dirname(init_checkpoint),
                                   LABEL_LIST_FILE))
  for path in candidates:
    if tf.io.gfile.exists(path):
      return _read_label_file(path), "from " + path
  raise common.UserError(
      "no label list: give --labels, or train first (--do_train writes %s to "
      "output_dir), or point --output_dir/--init_checkpoint at a fine-tuned "
      "model with its %s" % (LABEL_LIST_FILE, LABEL_LIST_FILE))


def save_labels(label_list):
  """Writes label_list.txt to output_dir; refuses to resume with another."""
  path = os.path.join(FLAGS.output_dir, LABEL_LIST_FILE)
  if tf.io.gfile.exists(path) and checkpoints.latest_checkpoint(
      FLAGS.output_dir):
    saved = _read_label_file(path)
    if saved != label_list:
      raise common.UserError(
          "%s lists the labels %s but this run has %s: output_dir holds "
          "another model. Use a new --output_dir" %
          (path, ",".join(saved), ",".join(label_list)))
  common.write_text(path, [label + "\n" for label in label_list])


def check_head(prefix, num_labels, hidden_size):
  """Refuses eval/predict when the checkpoint lacks a head of this shape."""
  if not prefix:
    raise common.UserError(
        "--do_eval/--do_predict: no checkpoint in output_dir and no "
        "--init_checkpoint; fine-tune first (--do_train)")
  shapes = dict(checkpoints.list_variables(prefix))
  if "output_weights" not in shapes:
    raise common.UserError(
        "--do_eval/--do_predict: checkpoint %s has no token classification "
        "head (output_weights): fine-tune first (--do_train) or point "
        "--init_checkpoint/--output_dir at a fine-tuned checkpoint" % prefix)
  if list(shapes["output_weights"]) != [num_labels, hidden_size]:
    raise common.UserError(
        "checkpoint %s has output_weights of shape %s but %d labels x hidden "
        "%d here: the label list does not match the one it was trained with" %
        (prefix, list(shapes["output_weights"]), num_labels, hidden_size))


def run(cfg, tokenizer, bert_config):
  """Train / eval / predict as the flags ask."""
  init_checkpoint = FLAGS.init_checkpoint

  train_sentences = None
  if FLAGS.do_train:
    train_sentences = read_conll(data_file(FLAGS.data_dir, "train"))
  label_list, label_source = resolve_labels(train_sentences, init_checkpoint)
  logging.info("Labels (%s): %s", label_source, ", ".join(label_list))
  if train_sentences is not None:
    check_tags(train_sentences, label_list, label_source)
  task = NerTask(bert_config, label_list, options=cfg.encoder_options)

  # Read every input before any compute, so that a bad file fails at once.
  eval_sentences = predict_sentences = None
  if FLAGS.do_eval:
    eval_sentences = read_conll(data_file(FLAGS.data_dir, "dev"))
    check_tags(eval_sentences, label_list, label_source)
  if FLAGS.do_predict:
    predict_sentences = read_conll(data_file(FLAGS.data_dir, "test"),
                                   require_tags=False)
    check_tags(predict_sentences, label_list, label_source)

  if FLAGS.do_train:
    save_labels(label_list)
    features = convert_sentences(train_sentences, label_list,
                                 FLAGS.max_seq_length, FLAGS.doc_stride,
                                 tokenizer)
    num_train_steps = int(
        len(features) / FLAGS.train_batch_size * FLAGS.num_train_epochs)
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
    if num_train_steps < 1:
      raise common.UserError(
          "%d training windows / --train_batch_size=%d * --num_train_epochs=%s "
          "gives 0 training steps: lower the batch size or add data" %
          (len(features), FLAGS.train_batch_size, FLAGS.num_train_epochs))
    train_file = os.path.join(FLAGS.output_dir, "train.tf_record")
    write_features(features, train_file)
    logging.info("***** Running training *****")
    logging.info("  Num sentences = %d, windows = %d", len(train_sentences),
                 len(features))
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    logging.info("  Num steps = %d", num_train_steps)
    dynamic = FLAGS.dynamic_padding and not cfg.use_tpu
    if (cfg.use_tpu and FLAGS.dynamic_padding and
        FLAGS["dynamic_padding"].present):
      logging.warning("--dynamic_padding is ignored on TPU (fixed shapes).")
    train_input_fn = file_based_input_fn_builder(
        train_file, FLAGS.max_seq_length, is_training=True,
        drop_remainder=True, dynamic_padding=dynamic)
    runner.train(cfg, task, train_input_fn, num_train_steps, num_warmup_steps,
                 FLAGS.learning_rate, init_checkpoint=init_checkpoint,
                 train_batch_size=FLAGS.train_batch_size)

  if not (FLAGS.do_eval or FLAGS.do_predict):
    return
  prefix = checkpoints.latest_checkpoint(FLAGS.output_dir)
  if prefix is None and init_checkpoint:
    prefix = checkpoints.normalize_checkpoint_path(init_checkpoint)
  check_head(prefix, len(label_list), bert_config.hidden_size)
  model, global_step, _ = runner.load_model(cfg, task,
                                            init_checkpoint=init_checkpoint)

  for split, sentences, batch_size in (
      ("eval", eval_sentences, FLAGS.eval_batch_size),
      ("predict", predict_sentences, FLAGS.predict_batch_size)):
    if sentences is None:
      continue
    word_log_probs = predict_split(cfg, task, model, sentences, split,
                                   batch_size, tokenizer)
    predicted = decode(word_log_probs, label_list,
                       FLAGS.bio_constrained_decoding)
    name = "eval" if split == "eval" else "test"
    common.write_text(
        os.path.join(FLAGS.output_dir, name + "_predictions.txt"),
        prediction_lines(sentences, predicted))
    if all(s.tags is not None for s in sentences):
      results = score_split(sentences, word_log_probs, predicted, label_list,
                            name, global_step)
      runner.write_eval_results(
          os.path.join(FLAGS.output_dir, name + "_results.txt"), results,
          header="***** %s results *****" % name.capitalize())
      writer = tf.summary.create_file_writer(
          os.path.join(FLAGS.output_dir, name))
      runner.write_scalars(writer, int(global_step),
                           {k: v for k, v in results.items()
                            if k != "global_step"})


def main(_):
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  if not FLAGS.do_train and not FLAGS.do_eval and not FLAGS.do_predict:
    raise common.UserError(
        "At least one of `do_train`, `do_eval` or `do_predict' must be True.")
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise common.UserError(
        "Cannot use sequence length %d because the BERT model was only "
        "trained up to sequence length %d (--max_seq_length must be <= "
        "max_position_embeddings of %s)" %
        (FLAGS.max_seq_length, bert_config.max_position_embeddings,
         FLAGS.bert_config_file))
  if FLAGS.doc_stride < 1:
    raise common.UserError("--doc_stride=%d must be at least 1" %
                           FLAGS.doc_stride)
  tf.io.gfile.makedirs(FLAGS.output_dir)
  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case)
  modeling.check_vocab_size(FLAGS.vocab_file, bert_config)
  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=FLAGS.output_dir)
  run(cfg, tokenizer, bert_config)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("data_dir")
  flags.mark_flag_as_required("vocab_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(common.main_wrapper(main))
