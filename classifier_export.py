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
"""SavedModel export of a fine-tuned classifier, with an in-graph tokenizer.

`export_classifier(model, export_dir, ...)` writes a SavedModel with two
signatures:

  serving_default(input_ids, input_mask, segment_ids)   int32 [batch, seq]
      -> probabilities [batch, num_labels], logits, predicted_label (string)
         (regression: predictions [batch])
  serving_text(text_a, text_b)                          string [batch]
      -> the same, plus the input_ids/input_mask/segment_ids it built;
         text_b "" means a single-sentence example.

No `label_ids` input is needed (#473). `serving_text` tokenizes inside the
graph with `InGraphTokenizer`, a TF-ops re-implementation of
`tokenization.FullTokenizer` (no tensorflow-text dependency) that gives the
same ids, then lays the pair out exactly as `run_classifier.
convert_single_example` does (same truncation rule, [CLS]/[SEP], padding to
max_seq_length).

Where the in-graph tokenizer can differ from the Python one (both documented
in docs/run_classifier.md): Python's `str.lower()` turns a capital sigma at
the end of a word into the final form (ς), the graph always gives σ; and
Unicode canonical reordering of combining marks that are *not* removed by
accent stripping (non-Mn marks) is not done. Neither occurs in GLUE text.
"""

import unicodedata

from absl import logging
import numpy as np
import tensorflow as tf

import common
import tokenization

# Character classes of the in-graph tokenizer.
_KEEP, _DROP, _SPACE, _SPLIT = 0, 1, 2, 3


def _char_class(cp):
  """The original BasicTokenizer's treatment of one code point."""
  char = chr(cp)
  if cp == 0 or cp == 0xFFFD or tokenization._is_control(char):  # pylint: disable=protected-access
    return _DROP
  if tokenization._is_whitespace(char) or char.isspace():  # pylint: disable=protected-access
    return _SPACE
  if tokenization._is_punctuation(char) or _is_cjk(cp):  # pylint: disable=protected-access
    return _SPLIT
  return _KEEP


def _is_cjk(cp):
  return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or
          (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F) or
          (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
          (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def _class_ranges():
  """(starts, classes): class of cp = classes[searchsorted(starts, cp) - 1]."""
  starts, classes = [], []
  previous = None
  for cp in range(0x110000):
    if _is_cjk(cp):
      cls = _SPLIT
    elif unicodedata.category(chr(cp)) in ("Cn", "Co", "Cs"):
      cls = _KEEP  # Unassigned, private use, surrogates: kept as they are.
    else:
      cls = _char_class(cp)
    if cls != previous:
      starts.append(cp)
      classes.append(cls)
      previous = cls
  return np.array(starts, np.int32), np.array(classes, np.int32)


def _lower_strip_map():
  """{cp: output string} for the code points that lower()+NFD-Mn change.

  The output includes the spaces the original puts around punctuation (after
  lower-casing) and around CJK characters, and turns whitespace into " ".
  """
  mapping = {}
  for cp in range(0x110000):
    char = chr(cp)
    if _is_cjk(cp):
      if unicodedata.decomposition(char) == "":
        continue
    elif unicodedata.category(char) in ("Cn", "Co", "Cs"):
      continue
    if _char_class(cp) in (_DROP, _SPACE):
      continue
    text = unicodedata.normalize("NFD", char.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    if text == char:
      continue
    out = []
    for c in text:
      if c.isspace() or tokenization._is_whitespace(c):  # pylint: disable=protected-access
        out.append(" ")
      elif tokenization._is_punctuation(c):  # pylint: disable=protected-access
        out.append(" " + c + " ")
      else:
        out.append(c)
    out = "".join(out)
    if _is_cjk(cp):
      out = " " + out + " "
    mapping[cp] = out
  return mapping


_TABLE_CACHE = {}


def _tables(do_lower_case):
  key = bool(do_lower_case)
  if key not in _TABLE_CACHE:
    starts, classes = _class_ranges()
    mapping = _lower_strip_map() if key else {}
    _TABLE_CACHE[key] = (starts, classes, mapping)
  return _TABLE_CACHE[key]


class InGraphTokenizer(tf.Module):
  """`tokenization.FullTokenizer` in TF ops: strings -> ragged wordpiece ids."""

  def __init__(self, vocab_file, do_lower_case=True,
               max_input_chars_per_word=200):
    super(InGraphTokenizer, self).__init__(name="in_graph_tokenizer")
    vocab = tokenization.load_vocab(vocab_file)
    self.do_lower_case = bool(do_lower_case)
    self.max_input_chars_per_word = int(max_input_chars_per_word)
    self.unk_id = int(vocab["[UNK]"])
    self.cls_id = int(vocab["[CLS]"])
    self.sep_id = int(vocab["[SEP]"])
    self._vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(vocab.keys())),
            tf.constant([int(v) for v in vocab.values()], tf.int64)), -1)
    starts, classes, mapping = _tables(self.do_lower_case)
    self._class_starts = tf.constant(starts)
    self._classes = tf.constant(classes)
    keys = sorted(mapping)
    self._map_keys = tf.constant(np.array(keys or [-1], np.int32))
    self._map_values = tf.constant([mapping[k] for k in keys] or [""])

  def _basic_tokenize(self, texts):
    """[batch] UTF-8 strings -> ragged [batch, (words)] strings."""
    cps = tf.strings.unicode_decode(texts, "UTF-8", errors="ignore")
    flat = cps.flat_values
    index = tf.searchsorted(self._class_starts, flat, side="right") - 1
    cls = tf.gather(self._classes, index)
    chars = tf.strings.unicode_encode(
        tf.RaggedTensor.from_tensor(tf.expand_dims(flat, 1)), "UTF-8")
    out = tf.where(tf.equal(cls, _SPLIT), tf.strings.join([" ", chars, " "]),
                   chars)
    out = tf.where(tf.equal(cls, _SPACE), " ", out)
    out = tf.where(tf.equal(cls, _DROP), "", out)
    if self.do_lower_case:
      pos = tf.searchsorted(self._map_keys, flat, side="left")
      pos = tf.minimum(pos, tf.size(self._map_keys) - 1)
      hit = tf.equal(tf.gather(self._map_keys, pos), flat)
      out = tf.where(hit, tf.gather(self._map_values, pos), out)
    joined = tf.strings.reduce_join(
        tf.RaggedTensor.from_row_splits(out, cps.row_splits), axis=1)
    return tf.strings.split(joined)

  def _wordpiece(self, words):
    """[n] words -> ragged [n, (pieces)] int64 ids (greedy longest match)."""
    lengths = tf.strings.length(words, unit="UTF8_CHAR")
    n = tf.size(words)
    too_long = lengths > self.max_input_chars_per_word
    active = tf.logical_and(lengths > 0, tf.logical_not(too_long))
    failed = too_long
    start = tf.zeros_like(lengths)
    pieces = tf.TensorArray(tf.int64, size=0, dynamic_size=True,
                            element_shape=tf.TensorShape([None]))
    step = tf.constant(0)

    def cond(step, start, active, failed, pieces):
      del step, start, failed, pieces
      return tf.reduce_any(active)

    def body(step, start, active, failed, pieces):
      # Only the words still being split take part in this step.
      rows = tf.cast(tf.where(active)[:, 0], tf.int32)
      row_words = tf.gather(words, rows)
      row_start = tf.gather(start, rows)
      remaining = tf.gather(lengths, rows) - row_start
      width = tf.reduce_max(remaining)
      sizes = tf.range(width, 0, -1)  # Longest candidate first.
      shape = tf.stack([tf.size(rows), width])
      candidates = tf.strings.substr(
          tf.broadcast_to(tf.expand_dims(row_words, 1), shape),
          tf.broadcast_to(tf.expand_dims(row_start, 1), shape),
          tf.broadcast_to(tf.expand_dims(sizes, 0), shape), unit="UTF8_CHAR")
      prefixed = tf.strings.join(["##", candidates])
      candidates = tf.where(tf.expand_dims(row_start > 0, 1), prefixed,
                            candidates)
      ids = self._vocab_table.lookup(candidates)
      valid = tf.logical_and(
          ids >= 0, tf.expand_dims(sizes, 0) <= tf.expand_dims(remaining, 1))
      found = tf.reduce_any(valid, axis=1)
      best = tf.argmax(tf.cast(valid, tf.int32), axis=1, output_type=tf.int32)
      best_id = tf.where(found, tf.gather(ids, best, batch_dims=1), -1)
      best_size = tf.where(found, tf.gather(sizes, best), 0)
      index = tf.expand_dims(rows, 1)
      emitted = tf.tensor_scatter_nd_update(
          tf.fill([n], tf.constant(-1, tf.int64)), index, best_id)
      failed = tf.tensor_scatter_nd_update(
          failed, index, tf.logical_or(tf.gather(failed, rows),
                                       tf.logical_not(found)))
      pieces = pieces.write(step, emitted)
      start = tf.tensor_scatter_nd_add(start, index, best_size)
      active = tf.tensor_scatter_nd_update(
          active, index, tf.logical_and(found, row_start + best_size <
                                        tf.gather(lengths, rows)))
      return step + 1, start, active, failed, pieces

    _, _, _, failed, pieces = tf.while_loop(
        cond, body, [step, start, active, failed, pieces])
    stacked = tf.cond(
        pieces.size() > 0,
        lambda: tf.transpose(pieces.stack()),
        lambda: tf.fill(tf.stack([n, 0]), tf.constant(-1, tf.int64)))
    stacked = tf.where(tf.expand_dims(failed, 1), tf.constant(-1, tf.int64),
                       stacked)
    ragged = tf.ragged.boolean_mask(stacked, stacked >= 0)
    unk = tf.RaggedTensor.from_tensor(
        tf.fill(tf.stack([n, 1]), tf.constant(self.unk_id, tf.int64)))
    return _select_rows(failed, unk, ragged)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokenize(self, texts):
    """[batch] strings -> ragged [batch, (wordpieces)] int64 ids."""
    words = self._basic_tokenize(texts)
    pieces = self._wordpiece(words.flat_values)
    return tf.RaggedTensor.from_row_splits(pieces, words.row_splits).merge_dims(
        1, 2)

  def encode_pair(self, text_a, text_b, max_seq_length):
    """The features of `run_classifier.convert_single_example`.

    text_a, text_b: [batch] strings (text_b "" for single sentences). Returns
    (input_ids, input_mask, segment_ids), int32 [batch, max_seq_length].
    """
    tokens_a = self.tokenize(text_a)
    tokens_b = self.tokenize(text_b)
    len_a = tokens_a.row_lengths()
    len_b = tokens_b.row_lengths()
    pair = len_b > 0
    # _truncate_seq_pair: pop from the longer list (ties: b) until they fit.
    budget = tf.cast(max_seq_length - 3, tf.int64)
    half_up = (budget + 1) // 2
    keep_a_pair = tf.minimum(len_a, tf.maximum(half_up, budget - len_b))
    keep_a_pair = tf.where(len_a + len_b <= budget, len_a, keep_a_pair)
    keep_b_pair = tf.where(len_a + len_b <= budget, len_b,
                           budget - keep_a_pair)
    keep_a = tf.where(pair, keep_a_pair,
                      tf.minimum(len_a, max_seq_length - 2))
    keep_b = tf.where(pair, keep_b_pair, 0)
    a = _truncate_rows(tokens_a, keep_a)
    b = _truncate_rows(tokens_b, keep_b)
    batch = tf.shape(text_a, out_type=tf.int64)[0]
    cls = tf.RaggedTensor.from_tensor(
        tf.fill(tf.stack([batch, 1]), tf.constant(self.cls_id, tf.int64)))
    sep = tf.RaggedTensor.from_tensor(
        tf.fill(tf.stack([batch, 1]), tf.constant(self.sep_id, tf.int64)))
    sep_b = tf.ragged.boolean_mask(sep.to_tensor(), tf.expand_dims(pair, 1))
    ids = tf.concat([cls, a, sep, b, sep_b], axis=1)
    segments = tf.concat([tf.zeros_like(cls), tf.zeros_like(a),
                          tf.zeros_like(sep), tf.ones_like(b),
                          tf.ones_like(sep_b)], axis=1)
    shape = [None, max_seq_length]
    input_ids = tf.cast(ids.to_tensor(0, shape=shape), tf.int32)
    input_mask = tf.cast(tf.ones_like(ids).to_tensor(0, shape=shape),
                         tf.int32)
    segment_ids = tf.cast(segments.to_tensor(0, shape=shape), tf.int32)
    return input_ids, input_mask, segment_ids


def _truncate_rows(ragged, keep):
  """Keeps the first keep[i] values of row i."""
  positions = tf.ragged.range(ragged.row_lengths())
  return tf.ragged.boolean_mask(ragged, positions < tf.expand_dims(keep, 1))


def _select_rows(condition, if_true, if_false):
  """Row-wise choice between two ragged [n, (m)] tensors."""
  true_len = if_true.row_lengths()
  false_len = if_false.row_lengths()
  lengths = tf.where(condition, true_len, false_len)
  padded_true = if_true.to_tensor(-1)
  padded_false = if_false.to_tensor(-1)
  width = tf.maximum(tf.shape(padded_true)[1], tf.shape(padded_false)[1])
  padded_true, padded_false = [
      tf.pad(t, [[0, 0], [0, width - tf.shape(t)[1]]], constant_values=-1)
      for t in (padded_true, padded_false)]
  chosen = tf.where(tf.expand_dims(condition, 1), padded_true, padded_false)
  return tf.RaggedTensor.from_tensor(chosen, lengths=lengths)


class ClassifierServingModule(tf.Module):
  """What the SavedModel holds: the fine-tuned model and the tokenizer."""

  def __init__(self, model, tokenizer, max_seq_length, label_list):
    super(ClassifierServingModule, self).__init__(name="classifier_serving")
    self.model = model
    self.tokenizer = tokenizer
    self.max_seq_length = int(max_seq_length)
    self.regression = label_list is None
    self.labels = tf.constant(list(label_list) if label_list else
                              ["prediction"])
    self.max_seq_length_value = tf.constant(self.max_seq_length)

  def _outputs(self, input_ids, input_mask, segment_ids):
    logits = self.model.logits(input_ids, input_mask, segment_ids,
                               training=False)
    if self.regression:
      return {"predictions": logits[:, 0], "logits": logits}
    probabilities = tf.nn.softmax(logits, axis=-1)
    return {"probabilities": probabilities, "logits": logits,
            "predicted_label": tf.gather(self.labels,
                                         tf.argmax(logits, axis=-1))}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.int32, name="input_ids"),
      tf.TensorSpec([None, None], tf.int32, name="input_mask"),
      tf.TensorSpec([None, None], tf.int32, name="segment_ids")])
  def serve_ids(self, input_ids, input_mask, segment_ids):
    return self._outputs(input_ids, input_mask, segment_ids)

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name="text_a"),
      tf.TensorSpec([None], tf.string, name="text_b")])
  def serve_text(self, text_a, text_b):
    input_ids, input_mask, segment_ids = self.tokenizer.encode_pair(
        text_a, text_b, self.max_seq_length)
    outputs = self._outputs(input_ids, input_mask, segment_ids)
    outputs.update(input_ids=input_ids, input_mask=input_mask,
                   segment_ids=segment_ids)
    return outputs


def export_classifier(model, export_dir, vocab_file, do_lower_case,
                      max_seq_length, label_list):
  """Writes the classifier SavedModel (see module docstring); returns the dir.

  `model` is a fine-tuned `run_classifier.ClassifierModel`; `max_seq_length`
  is the length of `serving_text`'s features; `label_list` is None for
  regression. `export_dir` is written under a temporary name first.
  """
  tokenizer = InGraphTokenizer(vocab_file, do_lower_case)
  module = ClassifierServingModule(model, tokenizer, max_seq_length, label_list)
  # The export is traced op by op even from a --fused_blocks model (saving
  # traces again, so the switch holds until the files are written): a
  # SavedModel with XLA-compiled functions would not load in a server built
  # without XLA. Same math (docs/modeling.md).
  bert = getattr(model, "bert", None)
  fused = getattr(bert, "fused_blocks", False)
  if fused is not False:
    bert.fused_blocks = False
  try:
    signatures = {
        "serving_default": module.serve_ids.get_concrete_function(),
        "serving_text": module.serve_text.get_concrete_function(),
    }
    # BertModel keeps its last outputs for the original accessors; they are
    # symbolic here and must not be saved.
    if hasattr(bert, "_outputs"):
      bert._outputs = None  # pylint: disable=protected-access
    with common.atomic_path(export_dir) as tmp_dir:
      tf.saved_model.save(module, tmp_dir, signatures=signatures)
  finally:
    if fused is not False:
      bert.fused_blocks = fused
  logging.info("Exported the classifier SavedModel to %s (signatures "
               "serving_default on int32 ids, serving_text on strings)",
               export_dir)
  return export_dir
