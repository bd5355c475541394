"""Create masked LM / next sentence masked_lm TF examples for BERT.

The original's flags, random number sequence and `tf.train.Example` records:
for the same input, vocab and seed the TFRecords are byte-identical to the
original run under protobuf's pure-Python runtime (features in insertion
order). Input: one sentence per line, a blank line between documents.

Additions, each behind a flag whose default keeps the original behaviour
(see the flags' help): --streaming, --num_workers, --wwm_per_word_masking
(#910), --strip_accents and --never_split (#130, #404); also progress lines, a
closing summary and warnings for known input traps.

TensorFlow is imported only when a path needs `tf.io.gfile` (e.g. `gs://`).
"""

import bisect
import collections
import contextlib
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
# Instance generation: the original algorithm and random draws (its own
# `random.Random(seed)`), on token strings or ids.
# ---------------------------------------------------------------------------


def _derived_seed(seed, *keys):
  """A 64-bit seed derived from the user's seed, for workers and chunks."""
  text = repr((seed,) + keys).encode("utf-8")
  return int.from_bytes(hashlib.sha256(text).digest()[:8], "little")


class _TokenSpec(collections.namedtuple(
    "_TokenSpec", ["cls", "sep", "mask", "vocab_words", "is_subword"])):
  """How instance generation sees tokens: strings (the original) or ids."""

  @classmethod
  def for_strings(cls, vocab_words):
    return cls("[CLS]", "[SEP]", "[MASK]", vocab_words,
               lambda token: token.startswith("##"))

  @classmethod
  def for_ids(cls, vocab):
    missing = [t for t in ("[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
      raise UserError("The vocab file has no %s token: use a BERT vocab with "
                      "[CLS], [SEP] and [MASK] entries." % ", ".join(missing))
    subword_ids = frozenset(i for t, i in vocab.items() if t.startswith("##"))
    return cls(vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"],
               [vocab[t] for t in vocab], subword_ids.__contains__)


class _Generator(collections.namedtuple(
    "_Generator", ["spec", "max_seq_length", "short_seq_prob",
                   "masked_lm_prob", "max_predictions_per_seq",
                   "do_whole_word_mask", "wwm_per_word_masking"],
    defaults=[False])):
  """Creates instances from documents exactly as the original does."""

  def from_document(self, all_documents, document_index, rng, emit,
                    prefix_sums=None):
    """Creates the instances of one document; calls `emit` for each.

    `emit(tokens, segment_b_start, masked_positions, masked_labels,
    is_random_next)`: segment ids are 0 before `segment_b_start`, then 1.
    `prefix_sums` (a `_LazyPrefixSums`) may be shared between calls.
    """
    document = all_documents[document_index]
    max_num_tokens = self.max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < self.short_seq_prob:
      target_seq_length = rng.randint(2, max_num_tokens)
    if prefix_sums is None:
      prefix_sums = _LazyPrefixSums(all_documents)
    sums = prefix_sums[document_index]
    chain = itertools.chain.from_iterable
    i = 0
    while i < len(document):
      # The original grows the chunk sentence by sentence up to the target
      # length: its last sentence is found by bisection instead.
      last = min(bisect.bisect_left(sums, sums[i] + target_seq_length, i + 1),
                 len(document)) - 1
      a_end = 1
      if last > i:
        a_end = rng.randint(1, last - i)
      tokens_a = list(chain(document[i:i + a_end]))
      if last == i or rng.random() < 0.5:
        is_random_next = True
        target_b_length = target_seq_length - len(tokens_a)
        for _ in range(10):
          random_document_index = rng.randint(0, len(all_documents) - 1)
          if random_document_index != document_index:
            break
        random_document = all_documents[random_document_index]
        random_start = rng.randint(0, len(random_document) - 1)
        random_sums = prefix_sums[random_document_index]
        random_last = min(bisect.bisect_left(
            random_sums, random_sums[random_start] + target_b_length,
            random_start + 1), len(random_document)) - 1
        tokens_b = list(chain(random_document[random_start:random_last + 1]))
        # The sentences of the chunk not used go back to the document.
        next_start = i + a_end
      else:
        is_random_next = False
        tokens_b = list(chain(document[i + a_end:last + 1]))
        next_start = last + 1
      truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
      tokens = [self.spec.cls]
      tokens.extend(tokens_a)
      tokens.append(self.spec.sep)
      tokens.extend(tokens_b)
      tokens.append(self.spec.sep)
      masked, positions, labels = self.mask(tokens, rng)
      emit(masked, len(tokens_a) + 2, positions, labels, is_random_next)
      i = next_start

  def mask(self, tokens, rng):
    """create_masked_lm_predictions: (output tokens, positions, labels)."""
    spec = self.spec
    num_to_predict = min(self.max_predictions_per_seq,
                         max(1, int(round(len(tokens) * self.masked_lm_prob))))
    if not self.do_whole_word_mask:
      # Shuffling the indexes draws as shuffling one-index lists does.
      if (tokens[0] == spec.cls and tokens[-1] == spec.sep and
          tokens.count(spec.cls) + tokens.count(spec.sep) == 3):
        # [CLS] A [SEP] B [SEP]: ranges, not a Python loop (7% less CPU time).
        first_sep = tokens.index(spec.sep)
        candidates = list(range(1, first_sep))
        candidates.extend(range(first_sep + 1, len(tokens) - 1))
      else:
        candidates = [i for i, token in enumerate(tokens)
                      if token != spec.cls and token != spec.sep]
      rng.shuffle(candidates)
      chosen_groups = [[i] for i in candidates[:num_to_predict]]
    else:
      groups = []
      for i, token in enumerate(tokens):
        if token == spec.cls or token == spec.sep:
          continue
        if groups and spec.is_subword(token):
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
        if count + len(group) <= num_to_predict:
          chosen_groups.append(group)
          count += len(group)
      if not self.wwm_per_word_masking:
        chosen_groups = [[i] for group in chosen_groups for i in group]

    output = list(tokens)
    vocab_words = spec.vocab_words
    for group in chosen_groups:   # 80% [MASK], 10% kept, 10% a random word
      if rng.random() < 0.8:
        for index in group:
          output[index] = spec.mask
      elif rng.random() >= 0.5:
        for index in group:
          output[index] = vocab_words[rng.randint(0, len(vocab_words) - 1)]
    chosen = sorted(i for group in chosen_groups for i in group)
    return output, chosen, [tokens[index] for index in chosen]


class _LazyPrefixSums(dict):
  """[0, len(s0), len(s0) + len(s1), ...] of each document, when needed."""

  def __init__(self, documents):
    super().__init__()
    self._documents = documents

  def __missing__(self, index):
    value = list(itertools.accumulate(map(len, self._documents[index]),
                                      initial=0))
    self[index] = value
    return value


def truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
  """Truncates a pair of sequences to a maximum sequence length (in place)."""
  while len(tokens_a) + len(tokens_b) > max_num_tokens:
    trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
    if not trunc_tokens:
      raise AssertionError("cannot truncate an empty segment")
    # Randomly from the front or the back, to avoid biases.
    if rng.random() < 0.5:
      del trunc_tokens[0]
    else:
      trunc_tokens.pop()


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
  return generator.mask(tokens, rng)


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
  all_documents = _documents(_tokenized(_iter_input_lines(input_files),
                                        tokenizer.tokenize))
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
# Instances as flat integer arrays: about 330 bytes each, a 0.15x peak RSS
# against the original's objects (docs/create_pretraining_data.md).
# ---------------------------------------------------------------------------

_STORE_FIELDS = ("ids", "num_tokens", "b_start", "positions", "labels",
                 "num_masked", "is_random_next")

_FeatureBatch = collections.namedtuple(
    "_FeatureBatch", ["input_ids", "num_tokens", "b_start", "positions",
                      "label_ids", "num_masked", "next_sentence_labels"])


class _InstanceStore(object):
  """`ids` (masked tokens) and `labels` of all instances, concatenated."""

  def __init__(self, vocab):
    id_typecode = "H" if len(vocab) <= 1 << 16 and max(
        vocab.values(), default=0) < 1 << 16 else "I"
    for name in _STORE_FIELDS:
      setattr(self, name, array(id_typecode if name in ("ids", "labels")
                                else "H"))

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

  def extend(self, other):
    for name in _STORE_FIELDS:
      getattr(self, name).extend(getattr(other, name))

  def batches(self, order, max_seq_length, max_predictions_per_seq):
    """Yields padded `_FeatureBatch`es of the instances in `order`."""
    v = {name: np.frombuffer(getattr(self, name),
                             dtype=getattr(self, name).typecode)
         for name in _STORE_FIELDS}
    token_starts = _offsets(v["num_tokens"])
    masked_starts = _offsets(v["num_masked"])
    for start in range(0, len(order), _WRITE_BATCH):
      rows = np.asarray(order[start:start + _WRITE_BATCH], dtype=np.int64)
      num_tokens = v["num_tokens"][rows].astype(np.int64)
      num_masked = v["num_masked"][rows].astype(np.int64)
      yield _FeatureBatch(
          _gather_padded(v["ids"], token_starts[rows], num_tokens,
                         max_seq_length),
          num_tokens, v["b_start"][rows].astype(np.int64),
          _gather_padded(v["positions"], masked_starts[rows], num_masked,
                         max_predictions_per_seq),
          _gather_padded(v["labels"], masked_starts[rows], num_masked,
                         max_predictions_per_seq),
          num_masked, v["is_random_next"][rows].astype(np.int64))


def _offsets(lengths):
  return np.cumsum(lengths, dtype=np.int64) - lengths


def _gather_padded(flat, starts, lengths, width):
  """Rows flat[start:start + length], zero-padded to `width` columns."""
  if len(flat) == 0 or width == 0:
    return np.zeros((len(starts), width), dtype=np.int64)
  columns = np.arange(width, dtype=np.int64)
  valid = columns[None, :] < lengths[:, None]
  index = np.where(valid, starts[:, None] + columns[None, :], 0)
  return np.where(valid, flat[index].astype(np.int64), 0)


# ---------------------------------------------------------------------------
# tf.train.Example records in the protobuf and TFRecord wire formats, a batch
# at a time with numpy: TensorFlow's import alone would cost about 6 s and
# 590 MB (docs/create_pretraining_data.md).
# ---------------------------------------------------------------------------
#
# A batch is built as a byte matrix with a `keep` mask (one row per record):
# its kept bytes, row by row, are the records back to back. Example = field 1
# (Features) = repeated field 1 (map entry: key 1, Feature 2); Feature =
# FloatList (field 2) or Int64List (3), each a packed field 1. A TFRecord is
# the uint64 length, its masked CRC-32C, the data, the data's masked CRC-32C.

_FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids",
                  "masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                  "next_sentence_labels")


def _crc32c_table():
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ 0x82F63B78, table >> 1)
  return table.astype(np.uint32)


_CRC_TABLE = _crc32c_table()
# [d * 256 + b]: the CRC register after byte b and d zero bytes, from zero.
_CRC_BY_DISTANCE = [_CRC_TABLE]


def _masked_crc32c(stream, lengths):
  """TFRecord's masked CRC-32C of each record of `stream` (back to back)."""
  if len(_CRC_BY_DISTANCE[0]) < 256 * int(lengths.max()):
    rows = [_CRC_TABLE]
    while len(rows) < int(lengths.max()):
      rows.append(_CRC_TABLE[rows[-1] & 0xFF] ^ (rows[-1] >> 8))
    _CRC_BY_DISTANCE[0] = np.concatenate(rows)
  table = _CRC_BY_DISTANCE[0]
  # CRC-32C is linear: the XOR of one entry per byte, by its distance from
  # the record's end; the initial 0xFFFFFFFF acts as four inverted bytes.
  starts = _offsets(lengths)
  index = np.repeat((starts + lengths - 1).astype(np.int32), lengths)
  index -= np.arange(len(stream), dtype=np.int32)   # the distance
  index <<= 8
  index += stream
  crc = np.bitwise_xor.reduceat(table[index], starts)
  for k in range(1, 5):
    crc ^= table[(lengths - k) * 256 + 0xFF]
  crc = ~crc
  crc = ((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)
  return crc.astype("<u4").view(np.uint8).reshape(-1, 4)


def _cat(*parts):
  """Parts side by side: a part is ([(bytes, keep) matrices], lengths)."""
  return ([m for part in parts for m in part[0]], sum(p[1] for p in parts))


def _const(data, rows):
  data = np.frombuffer(data, dtype=np.uint8)
  return ([(np.broadcast_to(data, (rows, len(data))),
            np.broadcast_to(True, (rows, len(data))))],
          np.full(rows, len(data)))


def _varints(values):
  """The part of the varints of a [rows, n] matrix of non-negative integers."""
  values = np.asarray(values)
  if values.size and values.min() < 0:
    raise ValueError("negative value in a feature")
  width = max(1, (int(values.max(initial=0)).bit_length() + 6) // 7)
  values = values.astype(np.uint32 if width < 5 else np.uint64)
  data = np.empty(values.shape + (width,), np.uint8)
  keep = np.ones(values.shape + (width,), bool)
  for b in range(width):
    data[:, :, b] = (values >> (7 * b)) & 0x7F
    if b:
      keep[:, :, b] = values >= (1 << (7 * b))
      data[:, :, b - 1] |= keep[:, :, b] * np.uint8(0x80)
  keep = keep.reshape(len(values), -1)
  return [(data.reshape(len(values), -1), keep)], keep.sum(axis=1)


def _prefixed(tag, part):
  """`tag`, the length of `part` as a varint, then `part`."""
  return _cat(_const(bytes([tag]), len(part[1])), _varints(part[1][:, None]),
              part)


def encode_tfrecords(features):
  """A `_FeatureBatch` as framed TFRecords: (byte stream, record lengths)."""
  rows, seq = features.input_ids.shape
  columns = np.arange(seq)[None, :]
  input_mask = columns < features.num_tokens[:, None]
  weights = (np.arange(features.positions.shape[1])[None, :] <
             features.num_masked[:, None]).astype("<f4").view(np.uint8)
  values = [
      _varints(features.input_ids), _varints(input_mask),
      _varints(input_mask & (columns >= features.b_start[:, None])),
      _varints(features.positions), _varints(features.label_ids),
      ([(weights, np.ones(weights.shape, bool))],
       np.full(rows, weights.shape[1])),
      _varints(features.next_sentence_labels[:, None])]
  entries = []
  for name, packed in zip(_FEATURE_NAMES, values):
    value_list = _prefixed(0x0A, packed) if packed[0][0][0].shape[1] else (
        [], np.zeros(rows, np.int64))
    feature = _prefixed(0x12 if name == "masked_lm_weights" else 0x1A,
                        value_list)
    key = bytes([0x0A, len(name)]) + name.encode("ascii")
    entries.append(_prefixed(0x0A, _cat(_const(key, rows),
                                        _prefixed(0x12, feature))))
  matrices, lengths = _prefixed(0x0A, _cat(*entries))
  data = np.concatenate([m[0] for m in matrices], axis=1)
  keep = np.concatenate([m[1] for m in matrices], axis=1)
  length_bytes = lengths.astype("<u8").view(np.uint8).reshape(rows, 8)
  header = np.concatenate([length_bytes, _masked_crc32c(
      length_bytes.ravel(), np.full(rows, 8))], axis=1)
  footer = _masked_crc32c(data[keep], lengths)
  framed = np.concatenate([header, data, footer], axis=1)
  keep = np.concatenate([np.ones((rows, 12), bool), keep,
                         np.ones((rows, 4), bool)], axis=1)
  return framed[keep], lengths + 16


def create_int_feature(values):
  """A `tf.train.Feature` holding `values` as an Int64List (the original's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def create_float_feature(values):
  """A `tf.train.Feature` holding `values` as a FloatList (the original's)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


# ---------------------------------------------------------------------------
# Files: local through Python's io, `scheme://` paths through tf.io.gfile.
# ---------------------------------------------------------------------------


def _expand_input_files(input_file):
  """The comma-separated globs, expanded in order; each must match a file."""
  input_files = []
  for pattern in input_file.split(","):
    if not pattern:
      continue
    if common.is_remote(pattern):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      matches = tf.io.gfile.glob(pattern)
    else:
      matches = glob_lib.glob(pattern)
    if not matches:
      raise UserError("--input_file pattern %r matches no file: check the "
                      "path (patterns are comma-separated globs)." % pattern)
    input_files.extend(matches)
  return input_files


def _iter_input_lines(input_files, progress=None):
  """Lines of all files in order, as TF's GFile.readline() split them.

  Lines end only at "\\n" (not returned); every "\\r" is dropped; strict
  UTF-8 (a bad byte is an error naming the file and line).
  """
  for path in input_files:
    try:
      with common.open_file(path, "rb") as reader:
        for number, raw in enumerate(reader, 1):
          if progress is not None:
            progress.bytes_read += len(raw)
          ended = raw.endswith(b"\n")
          raw = raw.replace(b"\r", b"")
          if not ended and not raw:
            continue
          try:
            yield raw.decode("utf-8").rstrip("\n") if ended else raw.decode(
                "utf-8")
          except UnicodeDecodeError as e:
            raise UserError(
                "Input file %s, line %d (column %d) is not valid UTF-8 (byte "
                "0x%02x): convert the file to UTF-8." %
                (path, number, e.start + 1, raw[e.start])) from None
    except UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      raise UserError("Cannot read input file %s: %s" % (path, e)) from e


def _file_size(path):
  try:
    if common.is_remote(path):
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      return tf.io.gfile.stat(path).length
    return os.path.getsize(path)
  except Exception:  # pylint: disable=broad-except
    return 0


def _no_instances_error():
  return UserError(
      "--input_file=%s holds no text (or too little for one instance with "
      "these flags): no instances were created and no output file is written. "
      "Pass a plain-text corpus: one sentence per line, a blank line between "
      "documents." % FLAGS.input_file)


class _OutputFiles(object):
  """Records round-robin over the files, under temporary names until commit."""

  def __init__(self, paths):
    self._files = contextlib.ExitStack()
    self.writers = []
    self.records_written = 0
    try:
      for path in paths:
        self.writers.append(self._files.enter_context(
            common.atomic_write(path, "wb")))
    except Exception as e:  # pylint: disable=broad-except
      self.abort()
      raise UserError("Cannot write output file %s: %s" % (
          paths[len(self.writers)], e)) from e

  def write(self, stream, lengths, features=None, inv_vocab=None):
    """Writes encoded records; logs the run's first 20 (with `features`)."""
    if features is not None:
      for row in range(min(len(lengths), max(0, 20 - self.records_written))):
        _log_example(inv_vocab, features, row)
    data = stream.tobytes()
    if len(self.writers) == 1:
      self.writers[0].write(data)
      self.records_written += len(lengths)
      return
    position = 0
    for length in lengths.tolist():
      writer = self.writers[self.records_written % len(self.writers)]
      writer.write(data[position:position + length])
      position += length
      self.records_written += 1

  def commit(self):
    self._files.close()

  def abort(self):
    # Leaves the atomic_write contexts as on an error: temporaries removed.
    error = RuntimeError("aborted")
    self._files.__exit__(type(error), error, None)


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
  columns = np.arange(features.input_ids.shape[1])
  input_mask = (columns < num_tokens).astype(int)
  segment_ids = ((columns >= int(features.b_start[row])) &
                 (input_mask == 1)).astype(int)
  weights = [1.0 if k < int(features.num_masked[row]) else 0.0
             for k in range(features.positions.shape[1])]
  values = [features.input_ids[row].tolist(), input_mask.tolist(),
            segment_ids.tolist(), features.positions[row].tolist(),
            features.label_ids[row].tolist(), weights,
            [int(features.next_sentence_labels[row])]]
  for name, feature_values in zip(_FEATURE_NAMES, values):
    logging.info("%s: %s", name, " ".join(str(x) for x in feature_values))


class _Progress(common.Progress):
  """Progress lines: documents/s, instances/s, share done, ETA."""

  def __init__(self, interval_secs, total_bytes=0):
    super(_Progress, self).__init__(total_bytes, interval_secs)
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


def _document_stats(documents):
  return collections.Counter(
      documents=len(documents), sentences=sum(map(len, documents)),
      single_sentence_documents=sum(1 for d in documents if len(d) == 1))


def _instance_stats(store):
  return collections.Counter(instances=len(store),
                             random_next=sum(store.is_random_next),
                             masked=sum(store.num_masked))


def _warn_about_input(stats):
  if stats["documents"] and (stats["single_sentence_documents"] ==
                             stats["documents"]):
    logging.warning(
        "Every document is one sentence long, so every instance is a "
        "'random next' pair (next_sentence_labels 1) and the next sentence "
        "task learns nothing. Put one sentence per line and a blank line "
        "only between documents (google-research/bert#125).")
  if stats["documents"] == 1:
    logging.warning(
        "The input is a single document: 'random next' sentences are taken "
        "from that same document and are mislabelled. Separate documents "
        "with blank lines (NVIDIA/DeepLearningExamples#421).")


def _log_summary(stats, elapsed):
  instances = stats["instances"]
  logging.info(
      "Summary: %d documents, %d sentences, %d instances, %d random next "
      "(%.1f%%), %d masked tokens (%.2f per instance), %.1fs.",
      stats["documents"], stats["sentences"], instances, stats["random_next"],
      100.0 * stats["random_next"] / max(instances, 1), stats["masked"],
      stats["masked"] / max(instances, 1), elapsed)


# ---------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------

_WRITE_BATCH = 2048


def _write_store(store, order, output, max_seq_length,
                 max_predictions_per_seq, inv_vocab, progress=None):
  """Writes the instances of `store` in the order `order`."""
  done = 0
  for features in store.batches(order, max_seq_length,
                                max_predictions_per_seq):
    output.write(*encode_tfrecords(features), features, inv_vocab)
    done += len(features.num_tokens)
    if progress is not None and progress.due():
      progress.report("Writing", instances=done, done=done, total=len(order))


def write_instance_to_example_files(instances, tokenizer, max_seq_length,
                                    max_predictions_per_seq, output_files):
  """Writes `TrainingInstance`s to TFRecord files (original API)."""
  store = _InstanceStore(tokenizer.vocab)
  for instance in instances:
    b_start = instance.segment_ids.index(1) if 1 in instance.segment_ids else (
        len(instance.tokens))
    store.add(tokenizer.convert_tokens_to_ids(instance.tokens), b_start,
              instance.masked_lm_positions,
              tokenizer.convert_tokens_to_ids(instance.masked_lm_labels),
              instance.is_random_next)
  output = _OutputFiles(list(output_files))
  try:
    _write_store(store, list(range(len(store))), output, max_seq_length,
                 max_predictions_per_seq, tokenizer.inv_vocab)
    if not output.records_written:
      raise _no_instances_error()
    output.commit()
  except BaseException:
    output.abort()
    raise
  logging.info("Wrote %d total instances", len(store))


# ---------------------------------------------------------------------------
# The pipelines.
# ---------------------------------------------------------------------------

# Everything a (worker) process needs to build a tokenizer and generate.
_Settings = collections.namedtuple("_Settings", [
    "vocab_file", "do_lower_case", "strip_accents", "never_split",
    "max_seq_length", "max_predictions_per_seq", "dupe_factor",
    "masked_lm_prob", "short_seq_prob", "random_seed", "do_whole_word_mask",
    "wwm_per_word_masking"])


def _tokenizer(settings):
  return tokenization.FullTokenizer(
      vocab_file=settings.vocab_file, do_lower_case=settings.do_lower_case,
      strip_accents=settings.strip_accents, never_split=settings.never_split)


def _tokenized(lines, tokenize):
  """The tokens of each stripped line, None for a blank line."""
  for line in lines:
    line = line.strip()
    yield tokenize(line) if line else None


def _documents(tokenized, progress=None):
  """The original's documents: a blank line (None) starts a new one."""
  documents = [[]]
  for tokens in tokenized:
    if tokens is None:
      documents.append([])
      if progress is not None and progress.due():
        progress.report("Reading", documents=len(documents) - 1,
                        done=progress.bytes_read, total=progress.total)
    elif tokens:
      documents[-1].append(tokens)
  return [d for d in documents if d]


def _generate(settings, vocab, documents, document_indexes, rng,
              progress=None):
  """dupe_factor passes over `document_indexes`: an `_InstanceStore`."""
  generator = _Generator(
      _TokenSpec.for_ids(vocab), settings.max_seq_length,
      settings.short_seq_prob, settings.masked_lm_prob,
      settings.max_predictions_per_seq, settings.do_whole_word_mask,
      settings.wwm_per_word_masking)
  store = _InstanceStore(vocab)
  total = settings.dupe_factor * len(document_indexes)
  done = 0
  prefix_sums = _LazyPrefixSums(documents)
  for _ in range(settings.dupe_factor):
    for document_index in document_indexes:
      generator.from_document(documents, document_index, rng, store.add,
                              prefix_sums)
      done += 1
      if progress is not None and progress.due():
        progress.report("Generating", instances=len(store), done=done,
                        total=total)
  return store


# State of a worker process (set by the pool initializer).
_WORKER = {}


def _init_worker(settings, documents, tokenizer=None):
  _WORKER.update(settings=settings, documents=documents,
                 tokenizer=tokenizer or _tokenizer(settings))


def _generate_shard(task):
  """In-memory mode, one worker's share of the documents."""
  worker_index, num_workers = task
  settings = _WORKER["settings"]
  n = len(_WORKER["documents"])
  rng = random.Random(_derived_seed(settings.random_seed, "worker",
                                    worker_index, num_workers))
  return _generate(settings, _WORKER["tokenizer"].vocab, _WORKER["documents"],
                   range(worker_index * n // num_workers,
                         (worker_index + 1) * n // num_workers), rng)


def _tokenize_lines(lines):
  return list(_tokenized(lines, _WORKER["tokenizer"].tokenize_to_ids))


def _process_chunk(task, sink=None):
  """Streaming mode: one chunk of lines -> encoded records and its stats.

  With `sink`, each encoded batch goes to `sink(stream, lengths, features)`
  as soon as it is ready; without, the batches are returned (worker).
  """
  chunk_index, lines = task
  settings = _WORKER["settings"]
  tokenizer = _WORKER["tokenizer"]
  documents = _documents(_tokenized(lines, tokenizer.tokenize_to_ids))
  del lines
  rng = random.Random(_derived_seed(settings.random_seed, "chunk",
                                    chunk_index))
  rng.shuffle(documents)
  store = _generate(settings, tokenizer.vocab, documents,
                    range(len(documents)), rng)
  order = list(range(len(store)))
  rng.shuffle(order)
  stats = _document_stats(documents) + _instance_stats(store)
  del documents
  batches = []
  for features in store.batches(order, settings.max_seq_length,
                                settings.max_predictions_per_seq):
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
  tokenizer = _tokenizer(settings)
  progress = _Progress(interval, sum(_file_size(p) for p in input_files))
  rng = random.Random(settings.random_seed)
  lines = _iter_input_lines(input_files, progress)
  if num_workers > 1:
    with _mp_context().Pool(num_workers, _init_worker,
                            (settings, None)) as pool:
      batches = iter(lambda: list(itertools.islice(lines, 2000)), [])
      documents = _documents(itertools.chain.from_iterable(
          pool.imap(_tokenize_lines, batches)))
  else:
    documents = _documents(_tokenized(lines, tokenizer.tokenize_to_ids),
                           progress)
  stats = _document_stats(documents)
  _warn_about_input(stats)
  rng.shuffle(documents)

  if num_workers > 1:
    store = _InstanceStore(tokenizer.vocab)
    with _mp_context().Pool(num_workers, _init_worker,
                            (settings, documents)) as pool:
      del documents
      for shard in pool.imap(_generate_shard,
                             [(w, num_workers) for w in range(num_workers)]):
        store.extend(shard)
  else:
    store = _generate(settings, tokenizer.vocab, documents,
                      range(len(documents)), rng, _Progress(interval))
    del documents

  order = list(range(len(store)))
  rng.shuffle(order)
  _write_store(store, order, output, settings.max_seq_length,
               settings.max_predictions_per_seq, tokenizer.inv_vocab,
               _Progress(interval))
  return stats + _instance_stats(store)


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
  tokenizer = _tokenizer(settings)
  progress = _Progress(interval, sum(_file_size(p) for p in input_files))
  stats = collections.Counter()
  chunks = enumerate(_line_chunks(_iter_input_lines(input_files, progress),
                                  max(1, int(chunk_mb * (1 << 20)))))

  def write(stream, lengths, features):
    output.write(stream, lengths, features, tokenizer.inv_vocab)

  def consume(result):
    batches, chunk_stats = result
    for batch in batches:
      write(*batch)
    stats.update(chunk_stats)
    if progress.due():
      progress.report("Streaming", documents=stats["documents"],
                      instances=stats["instances"], done=progress.bytes_read,
                      total=progress.total)

  if num_workers <= 1:
    _init_worker(settings, None, tokenizer)
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
  _warn_about_input(stats)
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
    if common.is_remote(path):
      continue
    if os.path.isdir(path):
      raise UserError("--output_file=%s is a directory: pass a file name "
                      "(e.g. %s)." % (path, os.path.join(path,
                                                         "tf_examples.tfrecord")))
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
      raise UserError("Cannot write output file %s: directory %s does not "
                      "exist." % (path, directory))


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
  return _Settings(**{name: getattr(FLAGS, name)
                      for name in _Settings._fields})


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
  _log_summary(stats, time.time() - start)


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
