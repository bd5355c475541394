# coding=utf-8
"""Extract pre-computed feature vectors from BERT.

With the original flags it writes the original JSON Lines file, one line per
input line, in input order (`linex_index` is the original's spelling):

  {"linex_index": 0, "features": [{"token": "[CLS]", "layers": [{"index": -1,
  "values": [0.252788, ...]}, ...]}, ...]}

every value `round(float(x), 6)` of the float32 activation, as `json.dumps`
writes it. A line `A ||| B` is a pair, split at the LAST ` ||| `; blank lines
are kept as examples (`[CLS] [SEP]`), as the original does.

Beyond the original: streaming with bounded memory and progress lines,
`--dynamic_padding`, `--output_format=npz|npy` with `--output_dtype`,
`--pooling=mean|cls` (one vector per line), `-` for stdin/stdout.
"""

import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import modeling
import runner
import tokenization

FLAGS = flags.FLAGS


def define_flags():
  """Defines the original flags of extract_features.py plus this project's."""
  flags.DEFINE_string("input_file", None,
                      "Input text, one example per line; `A ||| B` is a pair. "
                      "'-' reads standard input.")

  flags.DEFINE_string("output_file", None,
                      "Output file ('-' writes standard output).")

  flags.DEFINE_string("layers", "-1,-2,-3,-4",
                      "Comma-separated encoder layer indexes (Python list "
                      "indexing: -1 is the last layer, 0 the first).")

  flags.DEFINE_string(
      "bert_config_file", None,
      "The config json file corresponding to the pre-trained BERT model. "
      "This specifies the model architecture.")

  flags.DEFINE_integer(
      "max_seq_length", 128,
      "The maximum total input sequence length after WordPiece tokenization. "
      "Sequences longer than this will be truncated, and sequences shorter "
      "than this will be padded.")

  flags.DEFINE_string(
      "init_checkpoint", None,
      "Initial checkpoint (usually from a pre-trained BERT model).")

  flags.DEFINE_string("vocab_file", None,
                      "The vocabulary file that the BERT model was trained on.")

  flags.DEFINE_bool(
      "do_lower_case", True,
      "Whether to lower case the input text. Should be True for uncased "
      "models and False for cased models.")

  flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")

  runner.define_runtime_flags(iterations_per_loop=False,
                              save_checkpoints_steps=False)

  flags.DEFINE_bool(
      "use_one_hot_embeddings", False,
      "If True, tf.one_hot will be used for embedding lookups, otherwise "
      "tf.nn.embedding_lookup will be used. On TPUs, this should be True "
      "since it is much faster.")

  # New in this project.
  flags.DEFINE_enum(
      "output_format", "jsonl", ["jsonl", "npz", "npy"],
      "jsonl: the original JSON Lines file. npz: numpy archive (layout in "
      "docs/extract_features.md). npy: one [lines, hidden] array (needs "
      "--pooling=mean|cls).")
  flags.DEFINE_enum("output_dtype", "float32", ["float32", "float16"],
                    "dtype of the arrays in npz/npy output.")
  flags.DEFINE_enum(
      "pooling", "none", ["none", "mean", "cls"],
      "none: a vector per token and layer (the original). mean: average the "
      "selected layers, then average over the line's real tokens ([CLS] and "
      "[SEP] included). cls: average the selected layers at the [CLS] "
      "position.")
  flags.DEFINE_bool(
      "dynamic_padding", True,
      "Sort a window of lines by length and pad each batch only to a bucket "
      "length: the fixed-length output (up to float32 noise), much faster on "
      "short lines. --nodynamic_padding: the original's fixed-length batches.")
  flags.DEFINE_integer(
      "bucket_window", 1024,
      "With --dynamic_padding: how many lines are sorted by length together "
      "(rounded up to a multiple of batch_size). At most about one window of "
      "results waits to be written in input order.")

  for name in ("input_file", "output_file", "bert_config_file", "init_checkpoint",
               "vocab_file"):
    flags.mark_flag_as_required(name)


# ------------------------------------------------------------------------------------
# Examples and features (the original's data classes and conversion).
# ------------------------------------------------------------------------------------


class InputExample(object):

  def __init__(self, unique_id, text_a, text_b):
    self.unique_id = unique_id
    self.text_a = text_a
    self.text_b = text_b


class InputFeatures(object):
  """A single set of features of data."""

  def __init__(self, unique_id, tokens, input_ids, input_mask, input_type_ids):
    self.unique_id = unique_id
    self.tokens = tokens
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.input_type_ids = input_type_ids


class ExtractionStats(object):
  """What happened to the input lines (filled while reading and converting)."""

  def __init__(self):
    self.lines = 0
    self.blank_lines = 0
    self.pairs = 0
    self.truncated = 0
    self.tokens = 0
    self.longest = 0

  def summary(self, max_seq_length):
    return "; ".join([
        f"{self.lines} lines ({self.pairs} with a ' ||| ' pair)",
        f"{self.tokens} tokens written (longest line {self.longest} tokens)",
        f"{self.blank_lines} blank lines kept as '[CLS] [SEP]' examples"
        if self.blank_lines else "no blank lines",
        f"{self.truncated} lines truncated to max_seq_length={max_seq_length}"
        if self.truncated else "none truncated"])


# Everything up to the last " ||| ", then the rest (the original's greedy match).
_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")


def _open_input_lines(input_file):
  """Yields the raw lines (bytes, newline kept) of a file, or of stdin for '-'."""
  if input_file == "-":
    yield from sys.stdin.buffer
    return
  with common.open_file(input_file, "rb") as reader:
    yield from reader


def _decode(raw, input_file, number):
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise common.UserError(
        f"--input_file={input_file}: line {number} is not valid UTF-8 "
        f"({e.reason} at byte {e.start}); convert the file to UTF-8.") from None


def check_input_encoding(input_file):
  """Stops before any work (one line) when `input_file` is not UTF-8 text."""
  for number, raw in enumerate(_open_input_lines(input_file), 1):
    _decode(raw, input_file, number)


def iter_examples(input_file, stats=None):
  """Reads `input_file` lazily: one `InputExample` per line (as the original)."""
  for unique_id, raw in enumerate(_open_input_lines(input_file)):
    line = _decode(raw, input_file, unique_id + 1).strip()
    match = _PAIR_RE.match(line)
    text_a, text_b = match.groups() if match else (line, None)
    if stats is not None:
      stats.lines += 1
      if not line:
        stats.blank_lines += 1
        if stats.blank_lines <= 3:
          logging.info("Line %d is blank: kept as an example ([CLS] [SEP]), as "
                       "the original does.", unique_id + 1)
      if text_b is not None:
        stats.pairs += 1
    yield InputExample(unique_id=unique_id, text_a=text_a, text_b=text_b)


def read_examples(input_file):
  """Read a list of `InputExample`s from an input file."""
  return list(iter_examples(input_file))


def _truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Truncates a sequence pair in place, from the end of the longer one."""
  while len(tokens_a) + len(tokens_b) > max_length:
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def iter_features(examples, seq_length, tokenizer, stats=None):
  """Lazily converts `InputExample`s into `InputFeatures` of `seq_length`."""
  for ex_index, example in enumerate(examples):
    yield _convert_example(ex_index, example, seq_length, tokenizer, stats)


def convert_examples_to_features(examples, seq_length, tokenizer):
  """Loads a data file into a list of `InputFeatures`."""
  return list(iter_features(examples, seq_length, tokenizer))


def _convert_example(ex_index, example, seq_length, tokenizer, stats):
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  length = len(tokens_a) + (len(tokens_b) + 3 if tokens_b else 2)

  if tokens_b:
    # [CLS] A [SEP] B [SEP] must fit: keep seq_length - 3 wordpieces in all.
    _truncate_seq_pair(tokens_a, tokens_b, seq_length - 3)
  elif len(tokens_a) > seq_length - 2:
    tokens_a = tokens_a[0:(seq_length - 2)]

  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  input_type_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    input_type_ids += [1] * (len(tokens_b) + 1)

  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  padding = seq_length - len(input_ids)
  input_mask = [1] * len(input_ids) + [0] * padding
  input_ids = input_ids + [0] * padding
  input_type_ids = input_type_ids + [0] * padding

  if stats is not None:
    if length > seq_length:
      stats.truncated += 1
      if stats.truncated <= 3:
        logging.info("Line %d has %d tokens: truncated to max_seq_length=%d.",
                     example.unique_id + 1, length, seq_length)
    stats.longest = max(stats.longest, length)

  if ex_index < 5:
    logging.info("*** Example ***")
    logging.info("unique_id: %s", example.unique_id)
    logging.info("tokens: %s",
                 " ".join(tokenization.printable_text(x) for x in tokens))
    logging.info("input_ids: %s", " ".join(str(x) for x in input_ids))
    logging.info("input_mask: %s", " ".join(str(x) for x in input_mask))
    logging.info("input_type_ids: %s", " ".join(str(x) for x in input_type_ids))

  return InputFeatures(unique_id=example.unique_id, tokens=tokens,
                       input_ids=input_ids, input_mask=input_mask,
                       input_type_ids=input_type_ids)


# ------------------------------------------------------------------------------------
# Batching: fixed length (the original) or dynamic padding with length buckets.
# ------------------------------------------------------------------------------------


def iter_batches(features, batch_size, seq_length, dynamic_padding=False,
                 bucket_window=1024):
  """Groups `InputFeatures` into numpy batches padded to `seq_length` or, with
  dynamic padding, sorts each window of `bucket_window` lines by length and
  pads each batch to `runner.bucket_length(longest)` (here, not in
  `runner.predict`: no line is padded to max_seq_length, and several replicas
  work)."""
  window_size = batch_size
  if dynamic_padding:
    window_size *= max(1, -(-bucket_window // batch_size))
  features = iter(features)
  while True:
    window = list(itertools.islice(features, window_size))
    if not window:
      return
    if dynamic_padding:
      window.sort(key=lambda f: sum(f.input_mask))
    for start in range(0, len(window), batch_size):
      batch = window[start:start + batch_size]
      pad_to = seq_length
      if dynamic_padding:
        pad_to = runner.bucket_length(sum(batch[-1].input_mask), seq_length)
      arrays = {"unique_ids": np.array([f.unique_id for f in batch], np.int64)}
      for name in ("input_ids", "input_mask", "input_type_ids"):
        arrays[name] = np.array([getattr(f, name)[:pad_to] for f in batch],
                                dtype=np.int32)
      yield arrays


def input_fn_builder(batches):
  """Returns an `input_fn` streaming the numpy batches of `batches()` via tf.data."""

  def input_fn(params):
    del params  # The batches are already formed (batch_size is ours).
    signature = {name: tf.TensorSpec([None, None], tf.int32)
                 for name in ("input_ids", "input_mask", "input_type_ids")}
    signature["unique_ids"] = tf.TensorSpec([None], tf.int64)
    dataset = tf.data.Dataset.from_generator(batches,
                                             output_signature=signature)
    return dataset.prefetch(2)

  return input_fn


# ------------------------------------------------------------------------------------
# The model: a runner task whose predict returns the requested layers.
# ------------------------------------------------------------------------------------


class FeatureExtractionTask(object):
  """Runner task (predict only): the selected layers or pooled vectors."""

  def __init__(self, bert_config, layer_indexes, pooling="none", options=None):
    self.bert_config = bert_config
    self.layer_indexes = list(layer_indexes)
    self.pooling = pooling
    self.options = options   # modeling.EncoderOptions of the encoder

  def create_model(self):
    return modeling.BertModel(config=self.bert_config, is_training=False,
                              options=self.options)

  def predict(self, model, features):
    outputs = model(features["input_ids"], input_mask=features["input_mask"],
                    token_type_ids=features["input_type_ids"], training=False)
    selected = [outputs.all_encoder_layers[i] for i in self.layer_indexes]
    mask = features["input_mask"]
    predictions = {
        "unique_id": features["unique_ids"],
        "input_ids": features["input_ids"],
        "num_tokens": tf.reduce_sum(mask, axis=1),
    }
    if self.pooling == "none":
      predictions.update(("layer_output_%d" % j, layer_output)
                         for j, layer_output in enumerate(selected))
      return predictions
    averaged = tf.add_n(selected) / float(len(selected))
    if self.pooling == "cls":
      predictions["pooled"] = averaged[:, 0, :]
    else:
      weights = tf.cast(mask, averaged.dtype)[:, :, None]
      total = tf.reduce_sum(averaged * weights, axis=1)
      count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
      predictions["pooled"] = total / count
    return predictions


def model_fn_builder(bert_config, init_checkpoint, layer_indexes, use_tpu,
                     use_one_hot_embeddings):
  """The original's builder, in TF2 form: the task for `runner.predict`, with
  the checkpoint to predict with in `task.init_checkpoint`."""
  del use_tpu  # The strategy is the loop's (runner.RunConfig).
  task = FeatureExtractionTask(
      bert_config, layer_indexes,
      options=modeling.EncoderOptions(use_one_hot_embeddings))
  task.init_checkpoint = init_checkpoint
  return task


# ------------------------------------------------------------------------------------
# Output writers. Files are written under a temporary name and renamed at the end.
# ------------------------------------------------------------------------------------


def round6(values):
  """`round(float(x), 6)` for every element of a float32 array, as float64:
  exact, as x * 1e6 is exact in float64 (24 + 20 bits), rint rounds half to
  even like round(), and k / 1e6 is the double nearest k * 10**-6."""
  return np.round(np.asarray(values, dtype=np.float32).astype(np.float64), 6)


class _CountingStream(object):
  """Write-only, non-seekable view of a file object (zipfile then streams)."""

  def __init__(self, f):
    self._f = f
    self._pos = 0

  def write(self, data):
    self._f.write(data)
    self._pos += len(data)
    return len(data)

  def tell(self):
    return self._pos

  def flush(self):
    self._f.flush()


class _AtomicOutput(object):
  """A binary output: stdout for '-', else `path` via a temporary name."""

  def __init__(self, path):
    self._file = contextlib.ExitStack()
    self.f = sys.stdout.buffer if path == "-" else self._file.enter_context(
        common.atomic_write(path, "wb"))

  def close(self):
    self.f.flush()
    self._file.close()

  def abort(self):
    # Leaves the atomic_write context as on an error: the temporary removed.
    error = RuntimeError("aborted")
    self._file.__exit__(type(error), error, None)


def format_value_rows(values):
  """`json.dumps([round(float(x), 6) for x in row])[1:-1]` for each row.

  None for a row holding NaN, Inf or |x| >= 1e8 (the caller uses json.dumps).
  3.3-3.7x faster than json.dumps (0.12 vs 0.42 us a number, MiniLM rows).
  Exact: with k = rint(x * 1e6) (see `round6`) and |k| < 10**14, the decimal
  k / 10**6 is the shortest string that reads back to the rounded double, which
  repr prints: integer part, '.', the decimals without trailing zeros (at least
  one), or for 0 < |k| < 100 the exponent form `ke-06`, `De-05`, `D.de-05`.
  """
  x = np.asarray(values, dtype=np.float32)
  rows, width = x.shape
  scaled = np.rint(x.astype(np.float64) * 1e6).ravel()
  negative = np.signbit(scaled)
  with np.errstate(invalid="ignore"):
    k = np.abs(scaled)
    slow = ~(k < 1e14)
  if slow.any():
    k = np.where(slow, 0.0, k)
  int_part = (k // 1e6).astype(np.int64)
  frac = (k - int_part * 1e6).astype(np.int32)
  n = k.size
  num_int = max(1, len(str(int(int_part.max())))) if n else 1
  cols = 1 + num_int + 1 + 6 + 2  # sign, integer, '.', decimals, ", "
  chars = np.empty((cols, n), np.uint8)
  keep = np.empty((cols, n), bool)
  chars[0] = ord("-")
  keep[0] = negative
  rest = int_part
  for j in range(num_int - 1, -1, -1):
    rest, digit = np.divmod(rest, 10)
    chars[1 + j] = digit + ord("0")
    # No leading zeros, but always one integer digit.
    keep[1 + j] = True if j == num_int - 1 else int_part >= 10**(num_int - 1 - j)
  dot = 1 + num_int
  chars[dot] = ord(".")
  keep[dot] = True
  rest = frac
  nonzero_after = np.zeros(n, bool)
  for j in range(5, -1, -1):
    rest, digit = np.divmod(rest, 10)
    chars[dot + 1 + j] = digit + ord("0")
    if j:
      # No trailing zeros, but always one decimal.
      nonzero_after |= digit != 0
      keep[dot + 1 + j] = nonzero_after
    else:
      keep[dot + 1] = True
  chars[cols - 2] = ord(",")
  chars[cols - 1] = ord(" ")
  keep[cols - 2:] = True
  keep[cols - 2:, width - 1::width] = False  # No separator after a row's last.

  tiny = np.nonzero((int_part == 0) & (frac > 0) & (frac < 100))[0]
  if tiny.size:
    # repr's exponent form (value < 1e-4): 7 slots after the sign (of >= 8).
    small = frac[tiny]
    tens, ones = np.divmod(small, 10)
    single = small < 10
    sub = np.zeros((cols, tiny.size), np.uint8)
    sub_keep = np.zeros((cols, tiny.size), bool)
    sub[0], sub_keep[0] = ord("-"), negative[tiny]
    sub[1], sub_keep[1] = np.where(single, small, tens) + ord("0"), True
    sub[2], sub_keep[2] = ord("."), ~single & (ones != 0)
    sub[3], sub_keep[3] = ones + ord("0"), sub_keep[2]
    sub[4], sub[5], sub[6] = ord("e"), ord("-"), ord("0")
    sub[7] = np.where(single, ord("6"), ord("5"))
    sub_keep[4:8] = True
    sub[cols - 2:], sub_keep[cols - 2:] = chars[cols - 2:, tiny], keep[cols - 2:, tiny]
    chars[:, tiny] = sub
    keep[:, tiny] = sub_keep

  chars, keep = chars.T, keep.T
  lengths = keep.reshape(rows, width * cols).sum(axis=1)
  text = chars[keep].tobytes().decode("ascii")
  slow_rows = slow.reshape(rows, width).any(axis=1)
  out = []
  pos = 0
  for i in range(rows):
    end = pos + int(lengths[i])
    out.append(None if slow_rows[i] else text[pos:end])
    pos = end
  return out


def _values_json(values):
  """[rows, width] -> list of the JSON lists (`[...]`) of each row's rounded values."""
  values = np.asarray(values, dtype=np.float32)
  texts = format_value_rows(values)
  return ["[%s]" % t if t is not None else json.dumps(round6(row).tolist())
          for t, row in zip(texts, values)]


class JsonlWriter(_AtomicOutput):
  """The original JSON Lines output (or one pooled vector per line): what its
  `json.dumps(OrderedDict(...))` gives, built from pieces."""

  def __init__(self, output_file, layer_indexes, pooling="none"):
    super().__init__(output_file)
    self.layer_indexes = list(layer_indexes)
    self.pooling = pooling

  def write(self, unique_id, tokens, layer_outputs=None, pooled=None):
    if self.pooling == "none":
      num_layers = len(self.layer_indexes)
      width = layer_outputs[0].shape[-1]
      # [tokens, layers, hidden] -> one row per (token, layer).
      rows = _values_json(np.stack(layer_outputs, axis=1).reshape(-1, width))
      features = []
      for i, token in enumerate(tokens):
        layers = ", ".join(
            '{"index": %d, "values": %s}' % (layer_index, rows[i * num_layers + j])
            for j, layer_index in enumerate(self.layer_indexes))
        features.append('{"token": %s, "layers": [%s]}' %
                        (json.dumps(token), layers))
      line = '{"linex_index": %d, "features": [%s]}' % (unique_id,
                                                        ", ".join(features))
    else:
      line = ('{"linex_index": %d, "pooling": %s, "layers": %s, "num_tokens": %d, '
              '"values": %s}' % (unique_id, json.dumps(self.pooling),
                                 json.dumps(self.layer_indexes), len(tokens),
                                 _values_json(np.asarray(pooled)[None])[0]))
    self.f.write((line + "\n").encode("utf-8"))


def _write_npy_header(stream, dtype, shape):
  np.lib.format.write_array_header_1_0(stream, {
      "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
      "shape": shape})


class _Spool(object):
  """Rows of one array appended to a local temporary file, shape known at the end."""

  def __init__(self, directory, name, dtype, row_shape=()):
    self.dtype = np.dtype(dtype)
    self.row_shape = tuple(row_shape)
    self.rows = 0
    self.path = os.path.join(directory, name + ".raw")
    self.f = open(self.path, "wb")

  def append(self, rows):
    rows = np.ascontiguousarray(rows, dtype=self.dtype)
    assert rows.shape[1:] == self.row_shape, (rows.shape, self.row_shape)
    self.f.write(rows.tobytes())
    self.rows += rows.shape[0]

  def write_npy(self, stream):
    """Writes `.npy` bytes (header + data) of the spooled array to `stream`."""
    self.f.close()
    _write_npy_header(stream, self.dtype, (self.rows,) + self.row_shape)
    with open(self.path, "rb") as f:
      shutil.copyfileobj(f, stream, 1 << 22)


class _TokenSpool(object):
  """Token strings (one per line of a temp file) -> a fixed-width '<U' array."""

  def __init__(self, directory):
    self.rows = 0
    self.width = 1
    self.path = os.path.join(directory, "tokens.txt")
    self.f = open(self.path, "w", encoding="utf-8", newline="\n")

  def append(self, tokens):
    for token in tokens:
      self.f.write(token + "\n")
      self.width = max(self.width, len(token))
    self.rows += len(tokens)

  def write_npy(self, stream):
    self.f.close()
    dtype = np.dtype("<U%d" % self.width)
    _write_npy_header(stream, dtype, (self.rows,))
    with open(self.path, "r", encoding="utf-8", newline="\n") as f:
      while True:
        chunk = [line[:-1] for line in itertools.islice(f, 65536)]
        if not chunk:
          break
        stream.write(np.array(chunk, dtype=dtype).tobytes())


class ArrayWriter(object):
  """`.npz` or `.npy` output (layouts: docs/extract_features.md), spooled to a
  local temporary directory and assembled at the end."""

  def __init__(self, output_file, output_format, layer_indexes, hidden_size,
               pooling="none", dtype="float32"):
    self.output_file = output_file
    self.output_format = output_format
    self.layer_indexes = list(layer_indexes)
    self.pooling = pooling
    local = output_file != "-" and not common.is_remote(output_file)
    self.tmpdir = tempfile.mkdtemp(
        prefix=".extract_features-",
        dir=os.path.dirname(os.path.abspath(output_file)) if local else None)
    # The spools in the order of the npz members.
    if pooling == "none":
      self.spools = {
          "values": _Spool(self.tmpdir, "values", dtype,
                           (len(self.layer_indexes), hidden_size)),
          "offsets": _Spool(self.tmpdir, "offsets", np.int64),
          "tokens": _TokenSpool(self.tmpdir)}
      self.spools["offsets"].append(np.zeros([1], np.int64))
    else:
      self.spools = {
          "values": _Spool(self.tmpdir, "values", dtype, (hidden_size,)),
          "num_tokens": _Spool(self.tmpdir, "num_tokens", np.int32)}
    self.spools["linex_index"] = _Spool(self.tmpdir, "linex_index", np.int64)
    self.total = 0

  def write(self, unique_id, tokens, layer_outputs=None, pooled=None):
    spools = self.spools
    spools["linex_index"].append(np.array([unique_id], np.int64))
    if self.pooling == "none":
      spools["values"].append(np.stack(layer_outputs, axis=1))
      spools["tokens"].append(tokens)
      self.total += len(tokens)
      spools["offsets"].append(np.array([self.total], np.int64))
    else:
      spools["values"].append(np.asarray(pooled)[None])
      spools["num_tokens"].append(np.array([len(tokens)], np.int32))

  def close(self):
    out = _AtomicOutput(self.output_file)
    try:
      stream = _CountingStream(out.f)
      if self.output_format == "npy":
        self.spools["values"].write_npy(stream)
      else:
        with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
          for name, spool in self.spools.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as member:
              spool.write_npy(member)
          with archive.open("layers.npy", "w") as member:
            np.lib.format.write_array(
                member, np.array(self.layer_indexes, dtype=np.int32))
      out.close()
    except BaseException:
      out.abort()
      raise
    finally:
      self.abort()

  def abort(self):
    for spool in self.spools.values():
      spool.f.close()
    shutil.rmtree(self.tmpdir, ignore_errors=True)


def make_writer(output_file, output_format, layer_indexes, hidden_size,
                pooling="none", output_dtype="float32"):
  if output_format == "jsonl":
    return JsonlWriter(output_file, layer_indexes, pooling)
  return ArrayWriter(output_file, output_format, layer_indexes, hidden_size,
                     pooling, output_dtype)


# ------------------------------------------------------------------------------------
# Checks of flags and files (one clear line each).
# ------------------------------------------------------------------------------------


def parse_layers(layers, num_hidden_layers=None):
  """'-1,-2' -> [-1, -2]; checks each index against the model's layer count."""
  try:
    layer_indexes = [int(x) for x in layers.split(",")]
  except ValueError:
    raise common.UserError(
        f"--layers={layers!r} is not a comma-separated list of integers "
        "(e.g. -1,-2,-3,-4).")
  if num_hidden_layers is not None:
    for index in layer_indexes:
      if not -num_hidden_layers <= index < num_hidden_layers:
        raise common.UserError(
            f"--layers={layers}: index {index} is out of range for a model with "
            f"{num_hidden_layers} layers (num_hidden_layers in bert_config_file); "
            f"valid indexes are {-num_hidden_layers}..{num_hidden_layers - 1}.")
  return layer_indexes


def _require_file(flag, path):
  if not path:
    raise common.UserError(f"--{flag} is required.")
  if not tf.io.gfile.exists(path):
    raise common.UserError(f"--{flag}={path}: file not found.")
  if tf.io.gfile.isdir(path):
    raise common.UserError(f"--{flag}={path} is a directory; expected a file.")


def check_options(output_file, output_format, output_dtype, pooling,
                  max_seq_length, batch_size, bert_config):
  """Raises UserError for a combination of flags that cannot work."""
  if output_format == "npy" and pooling == "none":
    raise common.UserError(
        "--output_format=npy holds one vector per line: set --pooling=mean or "
        "--pooling=cls, or use --output_format=npz for per-token vectors.")
  if output_format == "jsonl" and output_dtype != "float32":
    raise common.UserError(
        f"--output_dtype={output_dtype} applies to --output_format=npz|npy only "
        "(jsonl values are rounded to 6 decimals).")
  if batch_size < 1:
    raise common.UserError(f"--batch_size={batch_size} must be at least 1.")
  if max_seq_length < 3:
    raise common.UserError(
        f"--max_seq_length={max_seq_length} is too small: [CLS] a [SEP] b [SEP] "
        "needs at least 3.")
  if max_seq_length > bert_config.max_position_embeddings:
    raise common.UserError(
        f"Cannot use sequence length {max_seq_length} because the BERT model was "
        f"only trained up to sequence length {bert_config.max_position_embeddings}"
        " (max_position_embeddings): lower --max_seq_length.")
  if output_file != "-":
    directory = os.path.dirname(output_file)
    if directory and not tf.io.gfile.isdir(directory):
      raise common.UserError(
          f"--output_file={output_file}: directory {directory} does not exist.")


# ------------------------------------------------------------------------------------
# The extraction loop.
# ------------------------------------------------------------------------------------


def extract(cfg, task, tokenizer, input_file, writer, max_seq_length, batch_size,
            init_checkpoint=None, dynamic_padding=False, bucket_window=1024,
            model=None, progress_seconds=10.0):
  """Runs the whole extraction through `runner.predict`, writing in input
  order (at most one window waits); returns the stats."""
  stats = ExtractionStats()
  errors = []

  def batches():
    try:
      examples = iter_examples(input_file, stats)
      features = iter_features(examples, max_seq_length, tokenizer, stats)
      yield from iter_batches(features, batch_size, max_seq_length,
                              dynamic_padding, bucket_window)
    except Exception as e:  # pylint: disable=broad-except
      # tf.data re-raises this as an OpError; keep it to re-raise it as is.
      errors.append(e)
      raise

  inv_vocab = tokenizer.inv_vocab
  pending = {}
  next_id = 0
  start = time.time()
  try:
    progress = common.Progress(common.count_lines(input_file), progress_seconds)
    results = runner.predict(cfg, task, input_fn_builder(batches), batch_size,
                             init_checkpoint=init_checkpoint, model=model)
    for result in results:
      unique_id = int(result["unique_id"])
      if unique_id != next_id:
        # Out of order (dynamic padding): keep only the real tokens, copied,
        # so the padded batch arrays can be freed while the line waits.
        n = int(result["num_tokens"])
        result = {k: (v[:n].copy() if k.startswith("layer_output_") else v)
                  for k, v in result.items()}
      pending[unique_id] = result
      while next_id in pending:
        result = pending.pop(next_id)
        n = int(result["num_tokens"])
        tokens = [inv_vocab[int(i)] for i in result["input_ids"][:n]]
        if task.pooling == "none":
          layer_outputs = [result["layer_output_%d" % j][:n]
                           for j in range(len(task.layer_indexes))]
          writer.write(next_id, tokens, layer_outputs=layer_outputs)
        else:
          writer.write(next_id, tokens, pooled=result["pooled"])
        stats.tokens += n
        next_id += 1
        if progress.due():
          rate, eta = progress.measure(next_id)
          if progress.total:
            logging.info("Processed %d/%d lines (%.1f%%), %.1f lines/s, ETA %s",
                         next_id, progress.total, 100.0 * next_id /
                         progress.total, rate, common.format_duration(eta))
          else:
            logging.info("Processed %d lines, %.1f lines/s", next_id, rate)
    if pending:
      raise RuntimeError("Lines %s were predicted but never written." %
                         sorted(pending)[:5])
    writer.close()
  except BaseException as e:
    writer.abort()
    if errors and isinstance(e, tf.errors.OpError):
      raise errors[0] from None
    raise
  seconds = time.time() - start
  logging.info("Done: %s; %.1f s, %.1f lines/s.", stats.summary(max_seq_length),
               seconds, stats.lines / max(seconds, 1e-9))
  if stats.lines == 0:
    logging.warning("--input_file=%s is empty: the output has no lines.",
                    input_file)
  return stats


def main(_):
  _require_file("bert_config_file", FLAGS.bert_config_file)
  _require_file("vocab_file", FLAGS.vocab_file)
  if FLAGS.input_file != "-":
    _require_file("input_file", FLAGS.input_file)
    check_input_encoding(FLAGS.input_file)
  init_checkpoint = checkpoints.normalize_checkpoint_path(FLAGS.init_checkpoint)

  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  layer_indexes = parse_layers(FLAGS.layers, bert_config.num_hidden_layers)
  check_options(FLAGS.output_file, FLAGS.output_format, FLAGS.output_dtype,
                FLAGS.pooling, FLAGS.max_seq_length, FLAGS.batch_size,
                bert_config)

  tokenizer = tokenization.FullTokenizer(
      vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case)

  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=None)
  # extract_features has its own --use_one_hot_embeddings flag (the original's).
  options = cfg.encoder_options._replace(
      use_one_hot_embeddings=FLAGS.use_one_hot_embeddings, recompute=False)
  task = FeatureExtractionTask(bert_config, layer_indexes,
                               pooling=FLAGS.pooling, options=options)
  writer = make_writer(FLAGS.output_file, FLAGS.output_format, layer_indexes,
                       bert_config.hidden_size, FLAGS.pooling, FLAGS.output_dtype)
  extract(cfg, task, tokenizer, FLAGS.input_file, writer, FLAGS.max_seq_length,
          FLAGS.batch_size, init_checkpoint=init_checkpoint,
          dynamic_padding=FLAGS.dynamic_padding,
          bucket_window=FLAGS.bucket_window)


if __name__ == "__main__":
  define_flags()
  app.run(common.main_wrapper(main))
