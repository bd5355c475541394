"""Create masked LM / next sentence masked_lm TF examples for BERT.

Same flags, same random number sequence and the same `tf.train.Example`
records as the original `create_pretraining_data.py`: for the same input,
vocab and seed, the TFRecords parse to the same records in the same order
(and, features being written in the original's insertion order, to the same
bytes as the original run under the pure-Python protobuf runtime).

Input format: one sentence per line, a blank line between documents.

Additions, each behind a flag whose default keeps the original behaviour:

* `--streaming`: generate and write chunk by chunk with bounded memory
  (chunks of `--streaming_chunk_mb` of input text, cut at document
  boundaries). Not record-identical to the in-memory mode (documents and
  instances are shuffled, and random next sentences drawn, within a chunk).
* `--num_workers`: several processes. Deterministic for a given seed and
  worker count, not record-identical to one worker (in streaming mode the
  output does not depend on the worker count at all).
* `--wwm_per_word_masking`: with `--do_whole_word_mask`, draw the 80/10/10
  choice once per word instead of once per WordPiece (#910).
* `--strip_accents`, `--never_split`: tokenizer options (#130, #404).
* Progress lines (documents/s, instances/s, ETA), a closing summary and
  warnings for the known input traps.

Speed: instances are held as compact integer arrays, the random stream of
`random.Random(seed)` is reproduced from bulk draws, and TFRecords are
encoded directly in the protobuf / TFRecord wire formats with numpy.

TensorFlow is imported only when a path needs `tf.io.gfile` (e.g. `gs://`):
local files are read and written with Python's io module, which yields the
same bytes without TensorFlow's import time and memory.
"""

import bisect
import collections
import glob as glob_lib
import hashlib
import itertools
import multiprocessing
import os
import random
import sys
import time
from array import array

from absl import app
from absl import flags
from absl import logging
import numpy as np

import common
import tokenization

FLAGS = flags.FLAGS


def define_flags():
  """Defines the original flags and the new ones (call before app.run)."""
  flags.DEFINE_string("input_file", None,
                      "Input raw text file (or comma-separated list of files).")
  flags.DEFINE_string(
      "output_file", None,
      "Output TF example file (or comma-separated list of files).")
  flags.DEFINE_string("vocab_file", None,
                      "The vocabulary file that the BERT model was trained on.")
  flags.DEFINE_bool(
      "do_lower_case", True,
      "Whether to lower case the input text. Should be True for uncased "
      "models and False for cased models.")
  flags.DEFINE_bool(
      "do_whole_word_mask", False,
      "Whether to use whole word masking rather than per-WordPiece masking.")
  flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
  flags.DEFINE_integer("max_predictions_per_seq", 20,
                       "Maximum number of masked LM predictions per sequence.")
  flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
  flags.DEFINE_integer(
      "dupe_factor", 10,
      "Number of times to duplicate the input data (with different masks).")
  flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
  flags.DEFINE_float(
      "short_seq_prob", 0.1,
      "Probability of creating sequences which are shorter than the "
      "maximum length.")

  # Additions (defaults = original behaviour).
  flags.DEFINE_bool(
      "streaming", False,
      "Generate and write chunk by chunk with bounded memory instead of "
      "holding the whole corpus. Not record-identical to the default mode.")
  flags.DEFINE_float(
      "streaming_chunk_mb", 1.0,
      "Streaming mode: MB of input text per chunk (cut at a blank line). "
      "Documents, random next sentences and the final shuffle stay within "
      "a chunk; peak memory grows with this, not with the corpus.")
  flags.DEFINE_integer(
      "num_workers", 1,
      "Worker processes. 1 = the original single process. More workers are "
      "deterministic for a given seed and worker count but not "
      "record-identical to one worker (except in --streaming mode, whose "
      "output does not depend on the worker count).")
  flags.DEFINE_bool(
      "wwm_per_word_masking", False,
      "With --do_whole_word_mask: choose [MASK] / keep / random once per "
      "word instead of once per WordPiece (fix for google-research/bert#910).")
  flags.DEFINE_bool(
      "strip_accents", None,
      "Strip accents. Unset (default) = strip exactly when lower-casing (the "
      "original); True/False = independent of --do_lower_case.")
  flags.DEFINE_list(
      "never_split", None,
      "Tokens kept whole when typed in the text, e.g. [MASK],[SEP] "
      "(default: none, as the original).")
  flags.DEFINE_float(
      "progress_interval_secs", 10.0,
      "Seconds between progress log lines (0 = none).")


UserError = common.UserError


# ---------------------------------------------------------------------------
# The original's data classes.
# ---------------------------------------------------------------------------


class TrainingInstance(object):
  """A single training instance (sentence pair)."""

  def __init__(self, tokens, segment_ids, masked_lm_positions,
               masked_lm_labels, is_random_next):
    self.tokens = tokens
    self.segment_ids = segment_ids
    self.is_random_next = is_random_next
    self.masked_lm_positions = masked_lm_positions
    self.masked_lm_labels = masked_lm_labels

  def __str__(self):
    printable = tokenization.printable_text
    lines = [
        "tokens: %s" % " ".join(printable(x) for x in self.tokens),
        "segment_ids: %s" % " ".join(str(x) for x in self.segment_ids),
        "is_random_next: %s" % self.is_random_next,
        "masked_lm_positions: %s" % " ".join(
            str(x) for x in self.masked_lm_positions),
        "masked_lm_labels: %s" % " ".join(
            printable(x) for x in self.masked_lm_labels),
    ]
    return "\n".join(lines) + "\n\n"

  def __repr__(self):
    return self.__str__()


MaskedLmInstance = collections.namedtuple("MaskedLmInstance",
                                          ["index", "label"])


# ---------------------------------------------------------------------------
# Random draws. The original's `random.Random(seed)` itself: a replay of its
# stream from bulk draws measured 12 % slower in CPU time than the standard
# library (bench/bench_cpd_random.py: 2.75 s vs 2.42 s median, identical records).
# ---------------------------------------------------------------------------


def _coin_flips(rng, count):
  """[rng.random() < 0.5 for _ in range(count)]."""
  return [rng.random() < 0.5 for _ in range(count)]


def _mask_decisions(rng, count, num_words):
  """The original's 80/10/10 draws for `count` masked positions.

  Returns one entry per position: -1 = [MASK], -2 = keep the token, or
  the index of the random vocab word (`randint(0, num_words - 1)`).
  """
  out = []
  for _ in range(count):
    if rng.random() < 0.8:
      out.append(-1)
    elif rng.random() < 0.5:
      out.append(-2)
    else:
      out.append(rng.randint(0, num_words - 1))
  return out


def _derived_seed(seed, *keys):
  """A 64-bit seed derived from the user's seed, for workers and chunks."""
  text = repr((seed,) + keys).encode("utf-8")
  return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


# ---------------------------------------------------------------------------
# Instance generation (the original algorithm, on token strings or ids).
# ---------------------------------------------------------------------------


class _TokenSpec(object):
  """How instance generation sees tokens: strings (the original) or ids."""

  def __init__(self, cls, sep, mask, vocab_words, is_subword,
               plain_text=False):
    self.cls = cls
    self.sep = sep
    self.mask = mask
    self.vocab_words = vocab_words
    self.is_subword = is_subword
    # True when sentences can never contain the [CLS] or [SEP] token.
    self.plain_text = plain_text

  @classmethod
  def for_strings(cls, vocab_words):
    return cls("[CLS]", "[SEP]", "[MASK]", vocab_words,
               lambda token: token.startswith("##"))

  @classmethod
  def for_ids(cls, vocab, never_split=None):
    """Ids of a vocab; `vocab_words` become the ids of the vocab keys.

    Text can produce the [CLS] / [SEP] tokens only through `never_split`
    (the basic tokenizer splits off "[" and "]" otherwise).
    """
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
      raise UserError("The vocab file has no %s token: use a BERT vocab with "
                      "[CLS], [SEP] and [MASK] entries." % ", ".join(missing))
    subword_ids = frozenset(i for t, i in vocab.items() if t.startswith("##"))
    plain_text = not {"[CLS]", "[SEP]"} & set(never_split or ())
    return cls(vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"],
               [vocab[t] for t in vocab], subword_ids.__contains__,
               plain_text)


class _Generator(object):
  """Creates instances from documents exactly as the original does."""

  def __init__(self, spec, max_seq_length, short_seq_prob, masked_lm_prob,
               max_predictions_per_seq, do_whole_word_mask,
               wwm_per_word_masking=False):
    self.spec = spec
    self.max_seq_length = max_seq_length
    self.short_seq_prob = short_seq_prob
    self.masked_lm_prob = masked_lm_prob
    self.max_predictions_per_seq = max_predictions_per_seq
    self.do_whole_word_mask = do_whole_word_mask
    self.wwm_per_word_masking = wwm_per_word_masking

  def from_document(self, all_documents, document_index, rng, emit,
                    prefix_sums=None):
    """Creates the instances of one document; calls `emit` for each.

    `emit(tokens, segment_b_start, masked_positions, masked_labels,
    is_random_next)`: `tokens` are the masked tokens, segment ids are 0
    before `segment_b_start` and 1 from there on. `prefix_sums[d]` (optional,
    from `_prefix_sums`) holds the running token counts of document d.
    """
    document = all_documents[document_index]
    max_num_tokens = self.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < self.short_seq_prob:
      target_seq_length = rng.randint(2, max_num_tokens)
    spec = self.spec
    if prefix_sums is None:
      prefix_sums = _LazyPrefixSums(all_documents)
    sums = prefix_sums[document_index]
    num_sentences = len(document)
    chain = itertools.chain.from_iterable
    i = 0
    while i < num_sentences:
      # The chunk grows sentence by sentence until it reaches the target
      # length or the document ends: find its last sentence directly.
      last = bisect.bisect_left(sums, sums[i] + target_seq_length,
                                i + 1) - 1
      if last >= num_sentences:
        last = num_sentences - 1
      chunk_size = last + 1 - i
      a_end = 1
      if chunk_size >= 2:
        a_end = rng.randint(1, chunk_size - 1)
      tokens_a = list(chain(document[i:i + a_end]))
      if chunk_size == 1 or rng.random() < 0.5:
        is_random_next = True
        target_b_length = target_seq_length - len(tokens_a)
        for _ in range(10):
          random_document_index = rng.randint(0, len(all_documents) - 1)
          if random_document_index != document_index:
            break
        random_document = all_documents[random_document_index]
        random_start = rng.randint(0, len(random_document) - 1)
        # Sentences from random_start on, until at least target_b_length
        # tokens (at least one sentence).
        random_sums = prefix_sums[random_document_index]
        random_last = bisect.bisect_left(
            random_sums, random_sums[random_start] + target_b_length,
            random_start + 1) - 1
        if random_last >= len(random_document):
          random_last = len(random_document) - 1
        tokens_b = list(chain(random_document[random_start:random_last + 1]))
        # The sentences of the chunk not used go back to the document.
        next_start = i + a_end
      else:
        is_random_next = False
        tokens_b = list(chain(document[i + a_end:last + 1]))
        next_start = last + 1
      tokens_a, tokens_b = _truncate_pair(tokens_a, tokens_b, max_num_tokens,
                                          rng)
      if not tokens_a or not tokens_b:
        raise AssertionError("empty segment after truncation")
      tokens = [spec.cls]
      tokens.extend(tokens_a)
      tokens.append(spec.sep)
      tokens.extend(tokens_b)
      tokens.append(spec.sep)
      masked, positions, labels = self.mask(
          tokens, rng, len(tokens_a) + 1 if spec.plain_text else None)
      emit(masked, len(tokens_a) + 2, positions, labels, is_random_next)
      i = next_start

  def mask(self, tokens, rng, first_sep=None):
    """create_masked_lm_predictions: (output tokens, positions, labels).

    `first_sep`: index of the first [SEP] when the caller built `tokens` as
    [CLS] A [SEP] B [SEP] from text that cannot contain [CLS] or [SEP].
    """
    spec = self.spec
    cls_token, sep_token = spec.cls, spec.sep
    num_tokens = len(tokens)
    num_to_predict = min(self.max_predictions_per_seq,
                         max(1, int(round(num_tokens * self.masked_lm_prob))))
    output = list(tokens)
    vocab_words = spec.vocab_words

    if not self.do_whole_word_mask:
      # Every candidate group is one index: shuffle the indexes themselves
      # (the same random draws as shuffling one-element lists).
      if first_sep is not None:
        candidates = list(range(1, first_sep))
        candidates.extend(range(first_sep + 1, num_tokens - 1))
      else:
        candidates = [i for i, token in enumerate(tokens)
                      if token != cls_token and token != sep_token]
      rng.shuffle(candidates)
      chosen = candidates[:num_to_predict]
    else:
      is_subword = spec.is_subword
      groups = []
      for i, token in enumerate(tokens):
        if token == cls_token or token == sep_token:
          continue
        if groups and is_subword(token):
          groups[-1].append(i)
        else:
          groups.append([i])
      rng.shuffle(groups)
      # Which groups get masked depends on their sizes only.
      chosen_groups = []
      count = 0
      for group in groups:
        if count >= num_to_predict:
          break
        if count + len(group) > num_to_predict:
          continue
        chosen_groups.append(group)
        count += len(group)
      if self.wwm_per_word_masking:
        return self._mask_per_word(tokens, output, chosen_groups, rng)
      chosen = [index for group in chosen_groups for index in group]

    decisions = _mask_decisions(rng, len(chosen), len(vocab_words))
    mask_token = spec.mask
    for index, decision in zip(chosen, decisions):
      if decision == -1:
        output[index] = mask_token
      elif decision >= 0:
        output[index] = vocab_words[decision]
    chosen.sort()
    return output, chosen, [tokens[index] for index in chosen]

  def _mask_per_word(self, tokens, output, chosen_groups, rng):
    """#910 fix: one [MASK] / keep / random choice per whole word."""
    vocab_words = self.spec.vocab_words
    chosen = []
    for group in chosen_groups:
      if rng.random() < 0.8:
        for index in group:
          output[index] = self.spec.mask
      elif rng.random() < 0.5:
        pass
      else:
        for index in group:
          output[index] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
      chosen.extend(group)
    chosen.sort()
    return output, chosen, [tokens[index] for index in chosen]


def _prefix_sums(document):
  """[0, len(s0), len(s0) + len(s1), ...] for a document's sentences."""
  return list(itertools.accumulate(map(len, document), initial=0))


class _LazyPrefixSums(dict):
  """Prefix sums of the documents, computed when first needed."""

  def __init__(self, documents):
    super().__init__()
    self._documents = documents

  def __missing__(self, index):
    value = _prefix_sums(self._documents[index])
    self[index] = value
    return value


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """truncate_seq_pair with the same draws; returns the truncated copies."""
  len_a = len(tokens_a)
  len_b = len(tokens_b)
  excess = len_a + len_b - max_num_tokens
  if excess <= 0:
    return tokens_a, tokens_b
  # Which segment loses each token depends on the lengths only (the longer
  # one, ties: b); a draw < 0.5 takes it from the front, else the back.
  front_a = back_a = front_b = back_b = 0
  for from_front in _coin_flips(rng, excess):
    if len_a > len_b:
      if from_front:
        front_a += 1
      else:
        back_a += 1
      len_a -= 1
    else:
      if len_b < 1:
        raise AssertionError("cannot truncate an empty segment")
      if from_front:
        front_b += 1
      else:
        back_b += 1
      len_b -= 1
  if front_a or back_a:
    tokens_a = tokens_a[front_a:len(tokens_a) - back_a]
  if front_b or back_b:
    tokens_b = tokens_b[front_b:len(tokens_b) - back_b]
  return tokens_a, tokens_b


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """Truncates a pair of sequences to a maximum sequence length (in place)."""
  new_a, new_b = _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
  tokens_a[:] = new_a
  tokens_b[:] = new_b


def _flag_or(name, default):
  try:
    return getattr(FLAGS, name)
  except (AttributeError, flags.UnparsedFlagAccessError):
    return default


def create_masked_lm_predictions(tokens, masked_lm_prob,
                                 max_predictions_per_seq, vocab_words, rng,
                                 do_whole_word_mask=None):
  """Creates the predictions for the masked LM objective (original API).

  `do_whole_word_mask=None` reads the `--do_whole_word_mask` flag as the
  original did (False when flags are not defined or parsed).
  """
  if do_whole_word_mask is None:
    do_whole_word_mask = _flag_or("do_whole_word_mask", False)
  generator = _Generator(_TokenSpec.for_strings(vocab_words), 0, 0.0,
                         masked_lm_prob, max_predictions_per_seq,
                         do_whole_word_mask)
  output, positions, labels = generator.mask(tokens, rng)
  return output, positions, labels


def create_instances_from_document(all_documents, document_index,
                                   max_seq_length, short_seq_prob,
                                   masked_lm_prob, max_predictions_per_seq,
                                   vocab_words, rng, do_whole_word_mask=None):
  """Creates `TrainingInstance`s for a single document (original API)."""
  if do_whole_word_mask is None:
    do_whole_word_mask = _flag_or("do_whole_word_mask", False)
  generator = _Generator(_TokenSpec.for_strings(vocab_words), max_seq_length,
                         short_seq_prob, masked_lm_prob,
                         max_predictions_per_seq, do_whole_word_mask)
  instances = []

  def emit(tokens, b_start, positions, labels, is_random_next):
    segment_ids = [0] * b_start + [1] * (len(tokens) - b_start)
    instances.append(TrainingInstance(tokens, segment_ids, positions, labels,
                                      is_random_next))

  generator.from_document(all_documents, document_index, rng, emit)
  return instances


def create_training_instances(input_files, tokenizer, max_seq_length,
                              dupe_factor, short_seq_prob, masked_lm_prob,
                              max_predictions_per_seq, rng,
                              do_whole_word_mask=None):
  """Creates `TrainingInstance`s from raw text (original API, in memory)."""
  all_documents = [[]]
  for line in _iter_input_lines(input_files):
    line = line.strip()
    if not line:
      all_documents.append([])
    tokens = tokenizer.tokenize(line)
    if tokens:
      all_documents[-1].append(tokens)
  all_documents = [x for x in all_documents if x]
  rng.shuffle(all_documents)
  vocab_words = list(tokenizer.vocab.keys())
  instances = []
  for _ in range(dupe_factor):
    for document_index in range(len(all_documents)):
      instances.extend(create_instances_from_document(
          all_documents, document_index, max_seq_length, short_seq_prob,
          masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
          do_whole_word_mask=do_whole_word_mask))
  rng.shuffle(instances)
  return instances


# ---------------------------------------------------------------------------
# Compact instance storage.
# ---------------------------------------------------------------------------


class _InstanceStore(object):
  """Instances as flat integer arrays (a few hundred bytes per instance)."""

  def __init__(self, id_typecode):
    self.id_typecode = id_typecode
    self.ids = array(id_typecode)        # masked tokens, concatenated
    self.num_tokens = array("H")
    self.b_start = array("H")
    self.positions = array("H")           # masked positions, concatenated
    self.labels = array(id_typecode)      # original ids, concatenated
    self.num_masked = array("H")
    self.is_random_next = bytearray()

  def __len__(self):
    return len(self.num_tokens)

  def add(self, tokens, b_start, positions, labels, is_random_next):
    self.ids.extend(tokens)
    self.num_tokens.append(len(tokens))
    self.b_start.append(b_start)
    self.positions.extend(positions)
    self.labels.extend(labels)
    self.num_masked.append(len(positions))
    self.is_random_next.append(1 if is_random_next else 0)

  def state(self):
    """Picklable contents (for results returned by worker processes)."""
    return (self.id_typecode, self.ids.tobytes(), self.num_tokens.tobytes(),
            self.b_start.tobytes(), self.positions.tobytes(),
            self.labels.tobytes(), self.num_masked.tobytes(),
            bytes(self.is_random_next))

  def extend_from_state(self, state):
    (_, ids, num_tokens, b_start, positions, labels, num_masked,
     is_random_next) = state
    self.ids.frombytes(ids)
    self.num_tokens.frombytes(num_tokens)
    self.b_start.frombytes(b_start)
    self.positions.frombytes(positions)
    self.labels.frombytes(labels)
    self.num_masked.frombytes(num_masked)
    self.is_random_next.extend(is_random_next)

  def as_numpy(self):
    """Read-only numpy views plus the start offset of every instance."""
    views = _NumpyInstances(
        ids=np.frombuffer(self.ids, dtype=self.ids.typecode),
        num_tokens=np.frombuffer(self.num_tokens, dtype=np.uint16),
        b_start=np.frombuffer(self.b_start, dtype=np.uint16),
        positions=np.frombuffer(self.positions, dtype=np.uint16),
        labels=np.frombuffer(self.labels, dtype=self.labels.typecode),
        num_masked=np.frombuffer(self.num_masked, dtype=np.uint16),
        is_random_next=np.frombuffer(bytes(self.is_random_next),
                                     dtype=np.uint8))
    return views


class _NumpyInstances(object):
  """numpy views of an `_InstanceStore`, batched into padded matrices."""

  def __init__(self, ids, num_tokens, b_start, positions, labels, num_masked,
               is_random_next):
    self.ids = ids
    self.num_tokens = num_tokens
    self.b_start = b_start
    self.positions = positions
    self.labels = labels
    self.num_masked = num_masked
    self.is_random_next = is_random_next
    self.token_offsets = _offsets(num_tokens)
    self.masked_offsets = _offsets(num_masked)

  def __len__(self):
    return len(self.num_tokens)

  def batch(self, rows, max_seq_length, max_predictions_per_seq):
    """Padded feature matrices of the instances `rows` (in that order)."""
    rows = np.asarray(rows, dtype=np.int64)
    num_tokens = self.num_tokens[rows].astype(np.int64)
    num_masked = self.num_masked[rows].astype(np.int64)
    input_ids = _gather_padded(self.ids, self.token_offsets[rows], num_tokens,
                               max_seq_length)
    positions = _gather_padded(self.positions, self.masked_offsets[rows],
                               num_masked, max_predictions_per_seq)
    label_ids = _gather_padded(self.labels, self.masked_offsets[rows],
                               num_masked, max_predictions_per_seq)
    return _FeatureBatch(input_ids, num_tokens,
                         self.b_start[rows].astype(np.int64), positions,
                         label_ids, num_masked,
                         self.is_random_next[rows].astype(np.int64))


def _offsets(lengths):
  out = np.zeros(len(lengths), dtype=np.int64)
  if len(lengths) > 1:
    np.cumsum(lengths[:-1], dtype=np.int64, out=out[1:])
  return out


def _gather_padded(flat, starts, lengths, width):
  """Rows flat[start:start + length], zero-padded to `width` columns."""
  if len(flat) == 0 or width == 0:
    return np.zeros((len(starts), width), dtype=np.int64)
  columns = np.arange(width, dtype=np.int64)
  valid = columns[None, :] < lengths[:, None]
  index = np.where(valid, starts[:, None] + columns[None, :], 0)
  return np.where(valid, flat[index].astype(np.int64), 0)


_FeatureBatch = collections.namedtuple(
    "_FeatureBatch", ["input_ids", "num_tokens", "b_start", "positions",
                      "label_ids", "num_masked", "next_sentence_labels"])


# ---------------------------------------------------------------------------
# tf.train.Example and TFRecord wire format, vectorised.
# ---------------------------------------------------------------------------
#
# Example = field 1 (Features); Features = repeated field 1 (map entries);
# map entry = field 1 (key string), field 2 (Feature); Feature = field 2
# (FloatList) or field 3 (Int64List); the lists = packed field 1. Features
# are written in the original's insertion order, as protobuf's pure-Python
# runtime writes a map built in that order. A TFRecord is the little-endian
# uint64 length, its masked CRC-32C, the data and the data's masked CRC-32C.
#
# CRC-32C is linear: crc(data) = crc(zero bytes of the same length) XOR the
# XOR over all bytes of G[d][byte], where d is the byte's distance from the
# end and G[d][b] the zero-initialised CRC register after byte b followed by
# d zero bytes. So the CRC of many records is computed with table lookups on
# the non-zero bytes only, runs of 0/1 bytes in O(1) through prefix tables.

_FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids",
                  "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                  "next_sentence_labels")
_CRC32C_POLY = 0x82F63B78
_CRC_MASK_DELTA = 0xA282EAD8


def _crc32c_table():
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ _CRC32C_POLY, table >> 1)
  return table.astype(np.uint32)


def _varint_bytes(values):
  """Varint encoding of non-negative integers: (planes, lengths).

  `planes[b]` holds byte b of every value's encoding (valid where
  `lengths > b`).
  """
  values = np.asarray(values)
  if values.size and values.min() < 0:
    raise ValueError("negative value in a feature")
  top = int(values.max()) if values.size else 0
  values = values.astype(np.int32 if top < (1 << 31) else np.int64)
  width = max(1, (top.bit_length() + 6) // 7)
  lengths = np.ones(values.shape, dtype=values.dtype)
  planes = []
  for b in range(width):
    plane = (values >> (7 * b)) & 0x7F
    if b + 1 < width:
      more = values >= (1 << (7 * (b + 1)))
      lengths += more
      plane |= more.astype(values.dtype) << 7
    planes.append(plane)
  return planes, lengths


def _varint_length(values):
  values = np.asarray(values, dtype=np.int64)
  length = np.ones(values.shape, dtype=np.int64)
  for b in range(1, 10):
    length += values >= (1 << (7 * b))
  return length


class _TFRecordEncoder(object):
  """Serialises batches of instances as framed TFRecords of tf.train.Example."""

  def __init__(self):
    self._table = _crc32c_table()
    self._size = 0
    self._g = None
    self._const_tables = {}

  def _grow(self, size):
    """Tables for records of up to `size` bytes."""
    if size <= self._size:
      return
    size = max(size, 2 * self._size, 256)
    table = self._table
    g = np.empty((size + 8, 256), dtype=np.uint32)
    row = table.copy()
    for d in range(size + 8):
      if d:
        row = table[row & 0xFF] ^ (row >> 8)
      g[d] = row
    self._g = g
    self._g_flat = g.reshape(-1)
    # CRC of d zero bytes (with the standard initial and final XOR).
    zeros = np.zeros(size + 9, dtype=np.uint32)
    register = 0xFFFFFFFF
    for d in range(1, size + 9):
      register = int(table[register & 0xFF]) ^ (register >> 8)
      zeros[d] = register ^ 0xFFFFFFFF
    self._zeros = zeros
    # XOR of G[d'][1] for d' < d: runs of 0x01 bytes.
    self._ones_prefix = np.concatenate(
        [[0], np.bitwise_xor.accumulate(g[:, 1])]).astype(np.uint32)
    # float32 1.0 = 00 00 80 3f: a 3f byte at distance e with 80 after it.
    pair = g[:-1, 0x3F] ^ g[1:, 0x80]
    strided = np.zeros(len(pair) + 4, dtype=np.uint32)
    for phase in range(4):
      strided[4 + phase::4] = np.bitwise_xor.accumulate(pair[phase::4])
    self._float_one_prefix = strided   # index e + 4
    self._const_tables = {}
    self._size = size

  def _const_table(self, data):
    """XOR of G[d_end + len - 1 - i][data[i]] for every end distance d_end."""
    table = self._const_tables.get(data)
    if table is None:
      rows = len(self._g) - len(data)
      table = np.zeros(rows, dtype=np.uint32)
      for i, byte in enumerate(data):
        if byte:
          shift = len(data) - 1 - i
          table ^= self._g[shift:shift + rows, byte]
      self._const_tables[data] = table
    return table

  def _masked(self, crc):
    crc = crc.astype(np.uint64)
    rotated = ((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(
        0xFFFFFFFF)
    return ((rotated + np.uint64(_CRC_MASK_DELTA)) &
            np.uint64(0xFFFFFFFF)).astype("<u4")

  def encode(self, features):
    """Returns (stream, lengths): framed records back to back, and sizes."""
    batch = len(features.num_tokens)
    if batch == 0:
      return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
    seq = features.input_ids.shape[1]
    preds = features.positions.shape[1]
    num_tokens = features.num_tokens.astype(np.int64)
    b_start = np.minimum(features.b_start.astype(np.int64), num_tokens)
    num_masked = features.num_masked.astype(np.int64)
    ids = _varint_bytes(features.input_ids)
    positions = _varint_bytes(features.positions)
    labels = _varint_bytes(features.label_ids)
    next_sentence = _varint_bytes(features.next_sentence_labels[:, None])
    full = lambda value: np.full(batch, value, dtype=np.int64)
    # (key, Feature field tag, value count, packed length, payload writer)
    specs = [
        (b"input_ids", 0x1A, seq, ids[1].sum(axis=1), ("varint", ids)),
        (b"input_mask", 0x1A, seq, full(seq), ("ones", 0, num_tokens)),
        (b"segment_ids", 0x1A, seq, full(seq),
         ("ones", b_start, num_tokens)),
        (b"masked_lm_positions", 0x1A, preds, positions[1].sum(axis=1),
         ("varint", positions)),
        (b"masked_lm_ids", 0x1A, preds, labels[1].sum(axis=1),
         ("varint", labels)),
        (b"masked_lm_weights", 0x12, preds, full(4 * preds),
         ("float_ones", num_masked)),
        (b"next_sentence_labels", 0x1A, 1, next_sentence[1].sum(axis=1),
         ("varint", next_sentence)),
    ]
    segments = []   # ("const", bytes) / ("varint", values [B]) / payload
    features_length = np.zeros(batch, dtype=np.int64)
    for key, tag, count, packed_length, payload in specs:
      if count:
        list_length = 1 + _varint_length(packed_length) + packed_length
      else:
        list_length = full(0)
      feature_length = 1 + _varint_length(list_length) + list_length
      entry_length = (2 + len(key)) + 1 + _varint_length(
          feature_length) + feature_length
      features_length += 1 + _varint_length(entry_length) + entry_length
      segments += [("const", b"\x0a"), ("varint", entry_length),
                   ("const", bytes([0x0A, len(key)]) + key + b"\x12"),
                   ("varint", feature_length), ("const", bytes([tag])),
                   ("varint", list_length)]
      if count:
        segments += [("const", b"\x0a"), ("varint", packed_length),
                     ("payload", packed_length, payload)]
    segments = [("const", b"\x0a"), ("varint", features_length)] + segments
    segments = _merge_constant_segments(segments)
    data_length = 1 + _varint_length(features_length) + features_length

    self._grow(int(data_length.max()) + 1)
    g_flat = self._g_flat
    framed_length = data_length + 16
    record_start = np.zeros(batch, dtype=np.int64)
    np.cumsum(framed_length[:-1], out=record_start[1:])
    # One spare byte at the end receives the writes of unused varint slots.
    out = np.zeros(int(framed_length.sum()) + 1, dtype=np.uint8)
    offset = record_start + 12
    end = offset + data_length
    crc = np.zeros(batch, dtype=np.uint32)
    for segment in segments:
      kind = segment[0]
      if kind == "const":
        data = segment[1]
        out[offset[:, None] + np.arange(len(data))] = np.frombuffer(
            data, dtype=np.uint8)
        crc ^= self._const_table(data)[end - offset - len(data)]
        offset = offset + len(data)
      elif kind == "varint":
        planes, lengths = _varint_bytes(segment[1][:, None])
        crc ^= self._write_varints(out, offset[:, None], end[:, None], planes,
                                   lengths)
        offset = offset + lengths[:, 0]
      else:
        _, packed_length, (payload_kind, *args) = segment
        if payload_kind == "varint":
          planes, lengths = args[0]
          inner = np.zeros(lengths.shape, dtype=np.int64)
          np.cumsum(lengths[:, :-1], axis=1, out=inner[:, 1:])
          crc ^= self._write_varints(out, offset[:, None] + inner,
                                     end[:, None], planes, lengths)
        elif payload_kind == "ones":
          low, high = args
          columns = np.arange(seq, dtype=np.int64)[None, :]
          ones = ((columns >= np.reshape(low, (-1, 1))) &
                  (columns < high[:, None])).view(np.uint8)
          out[offset[:, None] + columns] = ones
          distance = end - offset
          crc ^= (self._ones_prefix[distance - low] ^
                  self._ones_prefix[distance - high])
        else:   # float_ones: 1.0 for the first `count` values, then 0.0
          count = args[0]
          columns = np.arange(preds, dtype=np.int64)[None, :]
          where = columns < count[:, None]
          starts = (offset[:, None] + 4 * columns)[where]
          out[starts + 2] = 0x80
          out[starts + 3] = 0x3F
          last = end - offset - 4   # distance of the first 3f byte, + 4 per
          crc ^= (self._float_one_prefix[last + 4] ^
                  self._float_one_prefix[last + 4 - 4 * count])
        offset = offset + packed_length
    data_crc = self._masked(crc ^ self._zeros[data_length])

    length_bytes = data_length.astype("<u8").view(np.uint8).reshape(batch, 8)
    length_crc = np.zeros(batch, dtype=np.uint32)
    for i in range(8):
      length_crc ^= g_flat[(7 - i) * 256 + length_bytes[:, i].astype(np.int64)]
    length_crc = self._masked(length_crc ^ self._zeros[8])
    header = np.concatenate(
        [length_bytes, length_crc.view(np.uint8).reshape(batch, 4)], axis=1)
    out[record_start[:, None] + np.arange(12)] = header
    out[end[:, None] + np.arange(4)] = data_crc.view(np.uint8).reshape(batch, 4)
    return out[:-1], framed_length

  def _write_varints(self, out, starts, end, planes, lengths):
    """Writes varint bytes at `starts` (+ byte index); returns their CRC part."""
    crc = np.zeros(starts.shape[0], dtype=np.uint32)
    g_flat = self._g_flat
    # Table row of byte 0 of every value: its distance from the record end.
    row_base = ((end - 1 - starts) * 256).astype(np.int32)
    for b, plane in enumerate(planes):
      plane = plane.astype(np.int32)
      if b == 0:
        out[starts] = plane
        crc ^= np.bitwise_xor.reduce(g_flat[row_base + plane], axis=1)
        continue
      valid = lengths > b
      count = int(np.count_nonzero(valid))
      if not count:
        break
      if count * 3 > valid.size:
        # Mostly used: dense, with unused slots reading G[0][0] == 0.
        out[np.where(valid, starts + b, len(out) - 1)] = plane
        index = np.where(valid, row_base - 256 * b + plane, 0)
        crc ^= np.bitwise_xor.reduce(g_flat[index], axis=1)
      else:
        rows, columns = np.nonzero(valid)
        values = plane[rows, columns]
        out[np.broadcast_to(starts, valid.shape)[rows, columns] + b] = values
        np.bitwise_xor.at(crc, rows, g_flat[
            np.broadcast_to(row_base, valid.shape)[rows, columns] - 256 * b +
            values])
    return crc


def _merge_constant_segments(segments):
  """Turns batch-constant varints into bytes and merges adjacent bytes."""
  merged = []
  for segment in segments:
    if segment[0] == "varint" and (segment[1] == segment[1][0]).all():
      planes, lengths = _varint_bytes(segment[1][:1])
      segment = ("const", bytes(int(planes[b][0]) for b in range(lengths[0])))
    if segment[0] == "const" and merged and merged[-1][0] == "const":
      merged[-1] = ("const", merged[-1][1] + segment[1])
    else:
      merged.append(segment)
  return merged


_ENCODER = _TFRecordEncoder()


def encode_tfrecords(features):
  """Serialises a `_FeatureBatch` as framed TFRecords (stream, lengths)."""
  return _ENCODER.encode(features)


# ---------------------------------------------------------------------------
# Files: local through Python's io, everything else through tf.io.gfile.
# ---------------------------------------------------------------------------


def create_int_feature(values):
  """A `tf.train.Feature` holding `values` as an Int64List (the original's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def create_float_feature(values):
  """A `tf.train.Feature` holding `values` as a FloatList (the original's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _gfile_for(path):
  return tokenization._tf_gfile_for(path)  # pylint: disable=protected-access


def _glob(pattern):
  gfile = _gfile_for(pattern)
  if gfile is not None:
    return list(gfile.glob(pattern))
  return glob_lib.glob(pattern)


def _expand_input_files(input_file):
  """The comma-separated globs, expanded in order; each must match a file."""
  input_files = []
  for pattern in input_file.split(","):
    if not pattern:
      continue
    matches = _glob(pattern)
    if not matches:
      raise UserError("--input_file pattern %r matches no file: check the "
                      "path (patterns are comma-separated globs)." % pattern)
    input_files.extend(matches)
  return input_files


def _open_read(path):
  gfile = _gfile_for(path)
  if gfile is not None:
    return gfile.GFile(path, "rb")
  return open(path, "rb")


def _file_size(path):
  try:
    gfile = _gfile_for(path)
    if gfile is not None:
      return gfile.stat(path).length
    return os.path.getsize(path)
  except Exception:  # pylint: disable=broad-except
    return 0


_READ_BLOCK = 1 << 22


def _iter_input_lines(input_files, progress=None):
  """Lines of all files in order, split as TF's GFile.readline() did.

  Lines end only at "\\n"; every "\\r" is dropped; strict UTF-8 (a bad byte
  is an error naming the file and line).
  """
  for path in input_files:
    line_number = 0
    try:
      reader = _open_read(path)
    except Exception as e:  # pylint: disable=broad-except
      raise UserError("Cannot read input file %s: %s" % (path, e)) from e
    with reader:
      rest = b""
      while True:
        try:
          block = reader.read(_READ_BLOCK)
        except Exception as e:  # pylint: disable=broad-except
          raise UserError("Cannot read input file %s: %s" % (path, e)) from e
        if progress is not None:
          progress.bytes_read += len(block)
        if not block:
          break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
          lines = _decode_lines(block[:cut], path, line_number)
          lines.pop()  # after the final "\n"
          line_number += len(lines)
          yield from lines
      if rest:
        lines = _decode_lines(rest, path, line_number)
        if lines[-1]:
          yield lines[-1]


def _decode_lines(data, path, first_line_number):
  if b"\r" in data:
    data = data.replace(b"\r", b"")
  try:
    return data.decode("utf-8").split("\n")
  except UnicodeDecodeError as e:
    line = first_line_number + data.count(b"\n", 0, e.start) + 1
    line_start = data.rfind(b"\n", 0, e.start) + 1
    raise UserError(
        "Input file %s, line %d (column %d) is not valid UTF-8 (byte 0x%02x): "
        "convert the file to UTF-8." % (path, line, e.start - line_start + 1,
                                        data[e.start])) from None


def _no_instances_error():
  return UserError(
      "--input_file=%s holds no text (or too little for one instance with "
      "these flags): no instances were created and no output file is written. "
      "Pass a plain-text corpus: one sentence per line, a blank line between "
      "documents." % FLAGS.input_file)


class _OutputFiles(object):
  """The output files, written under temporary names and renamed at the end."""

  def __init__(self, paths):
    self.paths = paths
    self.temp_paths = [common.temp_name(p) for p in paths]
    self.writers = []
    self.records_written = 0
    try:
      for path, temp in zip(paths, self.temp_paths):
        gfile = _gfile_for(path)
        if gfile is not None:
          self.writers.append(gfile.GFile(temp, "wb"))
        else:
          directory = os.path.dirname(os.path.abspath(path))
          if not os.path.isdir(directory):
            raise UserError("Cannot write output file %s: directory %s does "
                            "not exist." % (path, directory))
          self.writers.append(open(temp, "wb"))
    except UserError:
      self.abort()
      raise
    except Exception as e:  # pylint: disable=broad-except
      self.abort()
      raise UserError("Cannot write output file %s: %s" % (
          paths[len(self.writers)], e)) from e

  def write(self, stream, lengths):
    """Writes framed records round-robin over the files."""
    count = len(lengths)
    if not count:
      return
    num_files = len(self.writers)
    if num_files == 1:
      self.writers[0].write(stream.tobytes())
    else:
      starts = _offsets(lengths)
      record_file = (self.records_written + np.arange(count)) % num_files
      for f in range(num_files):
        rows = np.nonzero(record_file == f)[0]
        if len(rows):
          index = np.repeat(starts[rows] - _offsets(lengths[rows]),
                            lengths[rows]) + np.arange(lengths[rows].sum())
          self.writers[f].write(stream[index].tobytes())
    self.records_written += count

  def commit(self):
    for writer in self.writers:
      writer.close()
    for path, temp in zip(self.paths, self.temp_paths):
      common.rename(temp, path)
    self.writers = []

  def abort(self):
    for writer in self.writers:
      try:
        writer.close()
      except Exception:  # pylint: disable=broad-except
        pass
    self.writers = []
    for temp in self.temp_paths:
      try:
        common.remove(temp)
      except Exception:  # pylint: disable=broad-except
        pass


# ---------------------------------------------------------------------------
# Logging of the first instances, progress and summary.
# ---------------------------------------------------------------------------


def _log_example(inv_vocab, features, row):
  """The original's "*** Example ***" block for one record."""
  num_tokens = int(features.num_tokens[row])
  tokens = [inv_vocab[int(i)] for i in features.input_ids[row, :num_tokens]]
  logging.info("*** Example ***")
  logging.info("tokens: %s", " ".join(
      tokenization.printable_text(x) for x in tokens))
  seq = features.input_ids.shape[1]
  columns = np.arange(seq)
  input_mask = (columns < num_tokens).astype(int)
  segment_ids = ((columns >= int(features.b_start[row])) &
                 (input_mask == 1)).astype(int)
  preds = features.positions.shape[1]
  weights = [1.0 if k < int(features.num_masked[row]) else 0.0
             for k in range(preds)]
  values = [
      ("input_ids", features.input_ids[row].tolist()),
      ("input_mask", input_mask.tolist()),
      ("segment_ids", segment_ids.tolist()),
      ("masked_lm_positions", features.positions[row].tolist()),
      ("masked_lm_ids", features.label_ids[row].tolist()),
      ("masked_lm_weights", weights),
      ("next_sentence_labels", [int(features.next_sentence_labels[row])]),
  ]
  for name, feature_values in values:
    logging.info("%s: %s", name, " ".join(str(x) for x in feature_values))


class _Progress(common.Progress):
  """Rate-limited progress lines: documents/s, instances/s, share done, ETA."""

  def __init__(self, interval_secs, total_bytes=0):
    super(_Progress, self).__init__(total_bytes, interval_secs)
    self.total_bytes = total_bytes
    self.bytes_read = 0

  def report(self, phase, documents=None, instances=None, done=None,
             total=None):
    elapsed = max(self.elapsed(), 1e-9)
    parts = ["%s:" % phase]
    if documents is not None:
      parts.append("%d documents (%.0f/s)" % (documents, documents / elapsed))
    if instances is not None:
      parts.append("%d instances (%.0f/s)" % (instances, instances / elapsed))
    if done is not None and total:
      self.total = total
      _, eta = self.measure(done)
      parts.append("%.1f%% done, ETA %s" % (100 * min(done / total, 1.0),
                                            common.format_duration(eta)))
    logging.info(" ".join(parts))


class _Stats(object):
  """Counts for the closing summary and the input warnings."""

  def __init__(self):
    self.documents = 0
    self.sentences = 0
    self.single_sentence_documents = 0
    self.instances = 0
    self.random_next = 0
    self.masked = 0

  def add_documents(self, documents):
    self.documents += len(documents)
    self.sentences += sum(len(d) for d in documents)
    self.single_sentence_documents += sum(1 for d in documents if len(d) == 1)

  def add_instances(self, numpy_instances):
    self.instances += len(numpy_instances)
    self.random_next += int(numpy_instances.is_random_next.sum())
    self.masked += int(numpy_instances.num_masked.sum(dtype=np.int64))

  def merge(self, other):
    for name in vars(self):
      setattr(self, name, getattr(self, name) + getattr(other, name))

  def warn(self):
    if self.documents == 0:
      return  # main stops with an error: there is nothing to write.
    if self.single_sentence_documents == self.documents:
      logging.warning(
          "Every document is one sentence long, so every instance is a "
          "'random next' pair (next_sentence_labels 1) and the next sentence "
          "task learns nothing. Put one sentence per line and a blank line "
          "only between documents (google-research/bert#125).")
    if self.documents == 1:
      logging.warning(
          "The input is a single document: 'random next' sentences are taken "
          "from that same document and are mislabelled. Separate documents "
          "with blank lines (NVIDIA/DeepLearningExamples#421).")

  def log_summary(self, elapsed):
    share = self.random_next / self.instances if self.instances else 0.0
    logging.info(
        "Summary: %d documents, %d sentences, %d instances, %d random next "
        "(%.1f%%), %d masked tokens (%.2f per instance), %.1fs.",
        self.documents, self.sentences, self.instances, self.random_next,
        100.0 * share, self.masked,
        self.masked / self.instances if self.instances else 0.0, elapsed)


# ---------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------

_WRITE_BATCH = 2048


def _write_store(store, order, output, config, inv_vocab, log_examples,
                 progress=None):
  """Writes the instances of `store` in the order `order`."""
  instances = store.as_numpy()
  total = len(order)
  for start in range(0, total, _WRITE_BATCH):
    rows = order[start:start + _WRITE_BATCH]
    features = instances.batch(rows, config.max_seq_length,
                               config.max_predictions_per_seq)
    first = output.records_written
    for row in range(min(len(rows), max(0, log_examples - first))):
      _log_example(inv_vocab, features, row)
    stream, lengths = encode_tfrecords(features)
    output.write(stream, lengths)
    if progress is not None and progress.due():
      progress.report("Writing", instances=output.records_written,
                      done=start + len(rows), total=total)
  return instances


def write_instance_to_example_files(instances, tokenizer, max_seq_length,
                                    max_predictions_per_seq, output_files):
  """Writes `TrainingInstance`s to TFRecord files (original API)."""
  store = _InstanceStore(_id_typecode(tokenizer.vocab))
  vocab = tokenizer.vocab
  for instance in instances:
    b_start = instance.segment_ids.index(1) if 1 in instance.segment_ids else (
        len(instance.tokens))
    store.add(tokenization.convert_tokens_to_ids(vocab, instance.tokens),
              b_start, instance.masked_lm_positions,
              tokenization.convert_tokens_to_ids(vocab,
                                                 instance.masked_lm_labels),
              instance.is_random_next)
  config = _Config(max_seq_length=max_seq_length,
                   max_predictions_per_seq=max_predictions_per_seq)
  output = _OutputFiles(list(output_files))
  try:
    _write_store(store, list(range(len(store))), output, config,
                 tokenizer.inv_vocab, 20)
    if not output.records_written:
      raise _no_instances_error()
    output.commit()
  except BaseException:
    output.abort()
    raise
  logging.info("Wrote %d total instances", len(store))


def _id_typecode(vocab):
  return "H" if len(vocab) <= 1 << 16 and max(vocab.values(), default=0) < (
      1 << 16) else "I"


_Config = collections.namedtuple(
    "_Config", ["max_seq_length", "max_predictions_per_seq"])


# ---------------------------------------------------------------------------
# The pipelines.
# ---------------------------------------------------------------------------


class _Settings(object):
  """Everything a (worker) process needs to build a tokenizer and generate."""

  def __init__(self, vocab_file, do_lower_case, strip_accents, never_split,
               max_seq_length, max_predictions_per_seq, dupe_factor,
               masked_lm_prob, short_seq_prob, random_seed, do_whole_word_mask,
               wwm_per_word_masking):
    self.vocab_file = vocab_file
    self.do_lower_case = do_lower_case
    self.strip_accents = strip_accents
    self.never_split = never_split
    self.max_seq_length = max_seq_length
    self.max_predictions_per_seq = max_predictions_per_seq
    self.dupe_factor = dupe_factor
    self.masked_lm_prob = masked_lm_prob
    self.short_seq_prob = short_seq_prob
    self.random_seed = random_seed
    self.do_whole_word_mask = do_whole_word_mask
    self.wwm_per_word_masking = wwm_per_word_masking

  def tokenizer(self):
    return tokenization.FullTokenizer(
        vocab_file=self.vocab_file, do_lower_case=self.do_lower_case,
        strip_accents=self.strip_accents, never_split=self.never_split)

  def generator(self, vocab):
    return _Generator(_TokenSpec.for_ids(vocab, self.never_split),
                      self.max_seq_length,
                      self.short_seq_prob, self.masked_lm_prob,
                      self.max_predictions_per_seq, self.do_whole_word_mask,
                      self.wwm_per_word_masking)


def _documents_from_lines(lines, tokenizer, progress=None):
  """The original's document building, on token ids."""
  documents = [[]]
  tokenize = tokenizer.tokenize_to_ids
  for line in lines:
    line = line.strip()
    if not line:
      documents.append([])
      if progress is not None and progress.due():
        progress.report("Reading", documents=len(documents) - 1,
                        done=progress.bytes_read, total=progress.total_bytes)
      continue
    ids = tokenize(line)
    if ids:
      documents[-1].append(ids)
  return [d for d in documents if d]


def _generate(documents, document_indexes, dupe_factor, generator, rng, store,
              progress=None):
  """dupe_factor passes over `document_indexes`, instances into `store`."""
  emit = store.add
  total = dupe_factor * len(document_indexes)
  done = 0
  prefix_sums = _LazyPrefixSums(documents)
  for _ in range(dupe_factor):
    for document_index in document_indexes:
      generator.from_document(documents, document_index, rng, emit,
                              prefix_sums)
      done += 1
      if progress is not None and progress.due():
        progress.report("Generating", instances=len(store), done=done,
                        total=total)


# State of a worker process (set by the pool initializer).
_WORKER = {}


def _init_worker(settings, documents):
  _WORKER["settings"] = settings
  _WORKER["documents"] = documents
  _WORKER["tokenizer"] = None


def _worker_tokenizer():
  if _WORKER["tokenizer"] is None:
    _WORKER["tokenizer"] = _WORKER["settings"].tokenizer()
  return _WORKER["tokenizer"]


def _generate_shard(task):
  """In-memory mode, one worker's share of the documents."""
  worker_index, num_workers = task
  settings = _WORKER["settings"]
  documents = _WORKER["documents"]
  tokenizer = _worker_tokenizer()
  rng = random.Random(_derived_seed(settings.random_seed, "worker", worker_index,
                                 num_workers))
  n = len(documents)
  indexes = range(worker_index * n // num_workers,
                  (worker_index + 1) * n // num_workers)
  store = _InstanceStore(_id_typecode(tokenizer.vocab))
  _generate(documents, indexes, settings.dupe_factor,
            settings.generator(tokenizer.vocab), rng, store)
  return store.state()


def _tokenize_lines(lines):
  """Worker: token ids of each (stripped) line, None for blank lines."""
  tokenize = _worker_tokenizer().tokenize_to_ids
  out = []
  for line in lines:
    line = line.strip()
    out.append(tokenize(line) if line else None)
  return out


def _process_chunk(task, sink=None):
  """Streaming mode: one chunk of lines -> framed records and counts.

  With `sink`, each encoded batch goes to `sink(stream, lengths, features)`
  as soon as it is ready; without, the batches are returned (worker).
  """
  chunk_index, lines = task
  settings = _WORKER["settings"]
  tokenizer = _worker_tokenizer()
  documents = _documents_from_lines(lines, tokenizer)
  del lines
  rng = random.Random(_derived_seed(settings.random_seed, "chunk", chunk_index))
  rng.shuffle(documents)
  store = _InstanceStore(_id_typecode(tokenizer.vocab))
  _generate(documents, range(len(documents)), settings.dupe_factor,
            settings.generator(tokenizer.vocab), rng, store)
  order = list(range(len(store)))
  rng.shuffle(order)
  instances = store.as_numpy()
  stats = _Stats()
  stats.add_documents(documents)
  stats.add_instances(instances)
  del documents
  batches = []
  for start in range(0, len(order), _WRITE_BATCH):
    features = instances.batch(order[start:start + _WRITE_BATCH],
                               settings.max_seq_length,
                               settings.max_predictions_per_seq)
    stream, lengths = encode_tfrecords(features)
    if sink is not None:
      sink(stream, lengths, features)
    else:
      # Only the first batch's features are kept (for the example log).
      batches.append((stream, lengths, None if batches else features))
  return batches, stats


def _mp_context():
  # Forking after TensorFlow started its threads is unsafe; TensorFlow is
  # only loaded here for gs://-style paths.
  method = "spawn" if "tensorflow" in sys.modules else "fork"
  return multiprocessing.get_context(method)


def _run_in_memory(settings, input_files, output, num_workers, interval):
  """The original pipeline (num_workers=1 gives the original's records)."""
  tokenizer = settings.tokenizer()
  progress = _Progress(interval, sum(_file_size(p) for p in input_files))
  stats = _Stats()
  rng = random.Random(settings.random_seed)
  lines = _iter_input_lines(input_files, progress)
  if num_workers > 1:
    documents = _parallel_documents(settings, lines, num_workers)
  else:
    documents = _documents_from_lines(lines, tokenizer, progress)
  stats.add_documents(documents)
  stats.warn()
  rng.shuffle(documents)

  store = _InstanceStore(_id_typecode(tokenizer.vocab))
  progress = _Progress(interval)
  if num_workers > 1:
    with _mp_context().Pool(num_workers, _init_worker,
                            (settings, documents)) as pool:
      del documents
      for state in pool.imap(_generate_shard,
                             [(w, num_workers) for w in range(num_workers)]):
        store.extend_from_state(state)
  else:
    _generate(documents, range(len(documents)), settings.dupe_factor,
              settings.generator(tokenizer.vocab), rng, store, progress)
    del documents

  order = list(range(len(store)))
  rng.shuffle(order)
  progress = _Progress(interval)
  instances = _write_store(store, order, output, settings, tokenizer.inv_vocab,
                           20, progress)
  stats.add_instances(instances)
  return stats


def _parallel_documents(settings, lines, num_workers):
  """Documents exactly as one process builds them, tokenized by a pool."""
  documents = [[]]
  with _mp_context().Pool(num_workers, _init_worker,
                          (settings, None)) as pool:
    batches = _batched(lines, 2000)
    for tokenized in pool.imap(_tokenize_lines, batches):
      for ids in tokenized:
        if ids is None:
          documents.append([])
        elif ids:
          documents[-1].append(ids)
  return [d for d in documents if d]


def _batched(iterable, size):
  iterator = iter(iterable)
  while True:
    batch = list(itertools.islice(iterator, size))
    if not batch:
      return
    yield batch


def _line_chunks(lines, chunk_bytes):
  """Lists of lines of about `chunk_bytes`, cut before a blank line."""
  chunk = []
  size = 0
  for line in lines:
    if size >= chunk_bytes and (not line.strip() or size >= 4 * chunk_bytes):
      yield chunk
      chunk = []
      size = 0
    chunk.append(line)
    size += len(line) + 1
  if chunk:
    yield chunk


def _run_streaming(settings, input_files, output, num_workers, interval,
                   chunk_mb):
  """Chunk by chunk: bounded memory, output independent of num_workers."""
  tokenizer = settings.tokenizer()
  progress = _Progress(interval, sum(_file_size(p) for p in input_files))
  stats = _Stats()
  chunks = enumerate(_line_chunks(_iter_input_lines(input_files, progress),
                                  max(1, int(chunk_mb * (1 << 20)))))
  logged = [0]

  def write(stream, lengths, features):
    if features is not None and logged[0] < 20:
      for row in range(min(len(features.num_tokens), 20 - logged[0])):
        _log_example(tokenizer.inv_vocab, features, row)
        logged[0] += 1
    output.write(stream, lengths)

  def consume(result):
    batches, chunk_stats = result
    for stream, lengths, features in batches:
      write(stream, lengths, features)
    stats.merge(chunk_stats)
    if progress.due():
      progress.report("Streaming", documents=stats.documents,
                      instances=stats.instances, done=progress.bytes_read,
                      total=progress.total_bytes)

  if num_workers <= 1:
    _init_worker(settings, None)
    _WORKER["tokenizer"] = tokenizer
    for task in chunks:
      consume(_process_chunk(task, sink=write))
  else:
    with _mp_context().Pool(num_workers, _init_worker,
                            (settings, None)) as pool:
      pending = collections.deque()
      for task in chunks:
        pending.append(pool.apply_async(_process_chunk, (task,)))
        while len(pending) >= num_workers + 1:
          consume(pending.popleft().get())
      while pending:
        consume(pending.popleft().get())
  stats.warn()
  return stats


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def _check_flags():
  for name in ("input_file", "output_file", "vocab_file"):
    if not getattr(FLAGS, name):
      raise UserError("--%s is required." % name)
  if FLAGS.max_seq_length < 5:
    raise UserError("--max_seq_length=%d is too small: it must be at least 5 "
                    "([CLS] A [SEP] B [SEP] with one token each, plus the "
                    "short-sequence draw)." % FLAGS.max_seq_length)
  if FLAGS.max_seq_length > 65535:
    raise UserError("--max_seq_length=%d is too large (at most 65535)." %
                    FLAGS.max_seq_length)
  if FLAGS.max_predictions_per_seq < 0:
    raise UserError("--max_predictions_per_seq must be >= 0.")
  if FLAGS.dupe_factor < 0:
    raise UserError("--dupe_factor must be >= 0.")
  if FLAGS.num_workers < 1:
    raise UserError("--num_workers must be >= 1 (got %d)." % FLAGS.num_workers)
  if FLAGS.streaming_chunk_mb <= 0:
    raise UserError("--streaming_chunk_mb must be > 0.")
  # The outputs are checked before the work, not found unwritable after it.
  for path in FLAGS.output_file.split(","):
    if not common.is_remote(path) and os.path.isdir(path):
      raise UserError("--output_file=%s is a directory: pass a file name "
                      "(e.g. %s)." % (path, os.path.join(path,
                                                         "tf_examples.tfrecord")))


def _load_settings():
  try:
    vocab = tokenization.load_vocab(FLAGS.vocab_file)
  except FileNotFoundError:
    raise UserError("--vocab_file %s does not exist." %
                    FLAGS.vocab_file) from None
  except UnicodeDecodeError as e:
    raise UserError("--vocab_file %s is not valid UTF-8 (%s)." %
                    (FLAGS.vocab_file, e)) from None
  except Exception as e:  # pylint: disable=broad-except
    raise UserError("Cannot read --vocab_file %s: %s" %
                    (FLAGS.vocab_file, e)) from None
  if not vocab:
    raise UserError("--vocab_file %s is empty." % FLAGS.vocab_file)
  _TokenSpec.for_ids(vocab)  # [CLS]/[SEP]/[MASK] present
  return _Settings(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
      strip_accents=FLAGS.strip_accents, never_split=FLAGS.never_split,
      max_seq_length=FLAGS.max_seq_length,
      max_predictions_per_seq=FLAGS.max_predictions_per_seq,
      dupe_factor=FLAGS.dupe_factor, masked_lm_prob=FLAGS.masked_lm_prob,
      short_seq_prob=FLAGS.short_seq_prob, random_seed=FLAGS.random_seed,
      do_whole_word_mask=FLAGS.do_whole_word_mask,
      wwm_per_word_masking=FLAGS.wwm_per_word_masking)


def main(_):
  logging.set_verbosity(logging.INFO)
  start = time.time()
  _check_flags()
  settings = _load_settings()
  input_files = _expand_input_files(FLAGS.input_file)

  logging.info("*** Reading from input files ***")
  for input_file in input_files:
    logging.info("  %s", input_file)

  output_files = FLAGS.output_file.split(",")
  output = _OutputFiles(output_files)
  try:
    logging.info("*** Writing to output files ***")
    for output_file in output_files:
      logging.info("  %s", output_file)
    if FLAGS.streaming:
      stats = _run_streaming(settings, input_files, output, FLAGS.num_workers,
                             FLAGS.progress_interval_secs,
                             FLAGS.streaming_chunk_mb)
    else:
      stats = _run_in_memory(settings, input_files, output, FLAGS.num_workers,
                             FLAGS.progress_interval_secs)
    if not output.records_written:
      raise _no_instances_error()
    output.commit()
  except BaseException:
    output.abort()
    raise
  logging.info("Wrote %d total instances", output.records_written)
  stats.log_summary(time.time() - start)


def _main_with_errors(argv):
  try:
    return main(argv)
  except KeyError as e:
    raise UserError("Token %s is not in the vocab file (e.g. no [UNK] entry)."
                    % common.one_line(e)) from e


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("output_file")
  flags.mark_flag_as_required("vocab_file")
  app.run(common.main_wrapper(_main_with_errors))
