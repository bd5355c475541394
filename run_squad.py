# coding=utf-8
# Copyright 2026 The BERT-on-TF2 project authors. Written for this project.
"""Run BERT on SQuAD 1.1 and SQuAD 2.0 (TF2 port of the original script).

Reads the SQuAD JSON, splits each context into overlapping windows of
WordPiece tokens ("doc spans"), fine-tunes a start/end pointer head on top of
BERT and writes `predictions.json`, `nbest_predictions.json` and (SQuAD 2.0)
`null_odds.json` for the official evaluation scripts.

Behaviour follows the original `run_squad.py`; the differences are:
  * SQuAD 2.0 no longer crashes when a question has no non-null n-best entry
    (the prediction is "", its null odds `score_null + 10000`);
  * `--drop_out_of_span_chunks` (default off) drops training windows that do
    not contain the answer instead of labelling them (0, 0);
  * `--do_eval` scores predictions (EM/F1 as the official v1.1 / v2.0
    scripts), `--null_threshold_search` reports the best
    `null_score_diff_threshold`;
  * bad input (malformed JSON, missing fields, answers that do not match their
    context, impossible flag combinations) gives one-line errors.
"""

import collections
import json
import math
import os
import random
import re
import string
import time

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
  """Defines the original run_squad flags plus the new ones (call once)."""
  # SQuAD's own flags first: runner.define_finetuning_flags skips names that
  # are already defined and adds the shared ones with the same meaning.
  flags.DEFINE_string("train_file", None,
                      "SQuAD json for training. E.g., train-v1.1.json")
  flags.DEFINE_string(
      "predict_file", None,
      "SQuAD json for predictions. E.g., dev-v1.1.json or test-v1.1.json")
  flags.DEFINE_integer(
      "max_seq_length", 384,
      "The maximum total input sequence length after WordPiece tokenization. "
      "Sequences longer than this will be truncated, and sequences shorter "
      "than this will be padded.")
  flags.DEFINE_integer(
      "doc_stride", 128,
      "When splitting up a long document into chunks, how much stride to "
      "take between chunks.")
  flags.DEFINE_integer(
      "max_query_length", 64,
      "The maximum number of tokens for the question. Questions longer than "
      "this will be truncated to this length.")
  flags.DEFINE_bool(
      "do_predict", False,
      "Whether to run prediction on --predict_file (writes predictions.json "
      "and nbest_predictions.json; with --do_eval, scores them).")
  flags.DEFINE_integer(
      "n_best_size", 20,
      "The total number of n-best predictions to generate in the "
      "nbest_predictions.json output file.")
  flags.DEFINE_integer(
      "max_answer_length", 30,
      "The maximum length of an answer that can be generated. This is needed "
      "because the start and end predictions are not conditioned on one "
      "another.")
  flags.DEFINE_bool(
      "verbose_logging", False,
      "If true, all of the warnings related to data processing will be "
      "printed. A number of warnings are expected for a normal SQuAD "
      "evaluation.")
  flags.DEFINE_bool(
      "version_2_with_negative", False,
      "If true, the SQuAD examples contain some that do not have an answer.")
  flags.DEFINE_float(
      "null_score_diff_threshold", 0.0,
      "If null_score - best_non_null is greater than the threshold predict "
      "null.")

  ## New flags (defaults keep the original behaviour)
  flags.DEFINE_bool(
      "drop_out_of_span_chunks", False,
      "Training: drop document windows that do not contain the whole answer "
      "instead of training them to point at [CLS] (0, 0) as the original "
      "does (google-research/bert#540). Impossible (SQuAD 2.0) questions "
      "keep their (0, 0) windows.")
  flags.DEFINE_bool(
      "do_eval", False,
      "Score predictions.json (and null_odds.json for SQuAD 2.0) in "
      "output_dir against the answers in predict_file, computing what the "
      "official v1.1 / v2.0 evaluation scripts compute; writes "
      "eval_results.json. Runs after --do_predict, or alone on existing "
      "prediction files.")
  flags.DEFINE_bool(
      "null_threshold_search", False,
      "SQuAD 2.0 with a predict_file that has answers: report the "
      "null_score_diff_threshold that maximises F1 and the EM/F1 at it "
      "(added to eval_results.json).")
  flags.DEFINE_bool(
      "allow_untrained_head", False,
      "Predict even when the checkpoint has no cls/squad head (it would be "
      "randomly initialised); by default that is refused.")

  # --do_eval here scores predictions.json: no eval batches.
  runner.define_finetuning_flags(skip=("eval_batch_size",))


def _flag_value(name, default):
  """Value of a parsed flag `name`, or `default` when used as a library."""
  return FLAGS[name].value if name in FLAGS and FLAGS.is_parsed() else default


# ---------------------------------------------------------------------------
# Examples and features
# ---------------------------------------------------------------------------


class SquadExample(collections.namedtuple(
    "SquadExample", ["qas_id", "question_text", "doc_tokens",
                     "orig_answer_text", "start_position", "end_position",
                     "is_impossible"], defaults=(None, None, None, False))):
  """A single training/test example for simple sequence classification.

  For examples without an answer, the start and end position are -1.
  """
  __slots__ = ()

  def __repr__(self):
    # The original hid a start_position of 0 (google-research/bert#191).
    s = "qas_id: %s, question_text: %s, doc_tokens: [%s]" % (
        tokenization.printable_text(self.qas_id),
        tokenization.printable_text(self.question_text),
        " ".join(self.doc_tokens))
    if self.start_position is not None:
      s += ", start_position: %d" % (self.start_position)
    if self.end_position is not None:
      s += ", end_position: %d" % (self.end_position)
    if self.start_position is not None:
      s += ", is_impossible: %r" % (self.is_impossible)
    return s


InputFeatures = collections.namedtuple(  # A single set of features of data.
    "InputFeatures",
    ["unique_id", "example_index", "doc_span_index", "tokens",
     "token_to_orig_map", "token_is_max_context", "input_ids", "input_mask",
     "segment_ids", "start_position", "end_position", "is_impossible"],
    defaults=(None, None, None))


def _split_context(paragraph_text):
  """Returns (doc_tokens, char_to_word_offset) as the original computes them."""
  doc_tokens = []
  char_to_word_offset = []
  prev_is_whitespace = True
  for c in paragraph_text:
    if c in " \t\r\n" or ord(c) == 0x202F:
      prev_is_whitespace = True
    else:
      if prev_is_whitespace:
        doc_tokens.append(c)
      else:
        doc_tokens[-1] += c
      prev_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def _field(obj, key, where, input_file, kind=None):
  """obj[key] with a one-line error naming the field and its place."""
  if not isinstance(obj, dict):
    raise ValueError("%s: %s is not a JSON object (got %s)" %
                     (input_file, where, type(obj).__name__))
  if key not in obj:
    raise ValueError("%s: missing field '%s' in %s" % (input_file, key, where))
  value = obj[key]
  if kind is not None and not isinstance(value, kind):
    raise ValueError("%s: field '%s' in %s has type %s, expected %s" %
                     (input_file, key, where, type(value).__name__,
                      kind.__name__))
  return value


def _read_json(path, missing_message):
  """The JSON value in `path`, with one-line errors."""
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(missing_message)
  with tf.io.gfile.GFile(path, "rb") as reader:
    raw = reader.read()
  try:
    return json.loads(raw.decode("utf-8"))
  except UnicodeDecodeError as e:
    raise ValueError("%s is not valid UTF-8 (byte offset %d): %s" %
                     (path, e.start, e.reason)) from None
  except json.JSONDecodeError as e:
    raise ValueError("%s is not valid JSON (line %d, column %d): %s." %
                     (path, e.lineno, e.colno, e.msg)) from None


def _load_squad_json(input_file):
  """Loads a SQuAD file's "data" list with clear errors for bad files."""
  obj = _read_json(input_file, "SQuAD file %s not found" % input_file)
  return _field(obj, "data", "the top-level object (a SQuAD file is a JSON "
                "object with `data`)", input_file, list)


_ReadStats = collections.namedtuple(
    "ReadStats", ["num_questions", "num_skipped", "skipped_qas_ids"])


def _read_squad_examples(input_file, is_training, version_2_with_negative):
  """read_squad_examples plus statistics about skipped questions."""
  input_data = _load_squad_json(input_file)
  examples = []
  num_questions = 0
  skipped = []
  for article_index, entry in enumerate(input_data):
    title = entry.get("title") if isinstance(entry, dict) else None
    article = "article %d%s" % (article_index, " (%r)" % title if title else "")
    paragraphs = _field(entry, "paragraphs", article, input_file, list)
    for paragraph_index, paragraph in enumerate(paragraphs):
      where = "%s, paragraph %d" % (article, paragraph_index)
      paragraph_text = _field(paragraph, "context", where, input_file, str)
      qas = _field(paragraph, "qas", where, input_file, list)
      doc_tokens, char_to_word_offset = _split_context(paragraph_text)

      for qa_index, qa in enumerate(qas):
        qwhere = "%s, question %d" % (where, qa_index)
        qas_id = _field(qa, "id", qwhere, input_file)
        qwhere += " (id %s)" % qas_id
        question_text = _field(qa, "question", qwhere, input_file, str)
        num_questions += 1
        start_position = end_position = orig_answer_text = None
        is_impossible = False
        if is_training:
          if version_2_with_negative:
            is_impossible = _field(qa, "is_impossible", qwhere, input_file)
          answers = _field(qa, "answers", qwhere, input_file, list)
          if (len(answers) != 1) and (not is_impossible):
            raise ValueError(
                "For training, each question should have exactly 1 answer. "
                "(%s: %s has %d)" % (input_file, qwhere, len(answers)))
          if not is_impossible:
            answer = answers[0]
            awhere = "the answer of " + qwhere
            orig_answer_text = _field(answer, "text", awhere, input_file, str)
            answer_offset = _field(answer, "answer_start", awhere, input_file,
                                   int)
            end_char = answer_offset + len(orig_answer_text) - 1
            if not (0 <= answer_offset < len(paragraph_text) and
                    0 <= end_char < len(paragraph_text)):
              logging.warning(
                  "Could not find answer: answer_start %d + length %d is "
                  "outside the context of %d characters (%s)", answer_offset,
                  len(orig_answer_text), len(paragraph_text), qwhere)
              skipped.append(qas_id)
              continue
            start_position = char_to_word_offset[answer_offset]
            end_position = char_to_word_offset[end_char]
            # Skip answers that cannot be recovered from the context.
            actual_text = " ".join(doc_tokens[start_position:end_position + 1])
            cleaned_answer_text = " ".join(
                tokenization.whitespace_tokenize(orig_answer_text))
            if actual_text.find(cleaned_answer_text) == -1:
              logging.warning("Could not find answer: '%s' vs. '%s'",
                              actual_text, cleaned_answer_text)
              skipped.append(qas_id)
              continue
          else:
            start_position = end_position = -1
            orig_answer_text = ""

        examples.append(SquadExample(
            qas_id, question_text, doc_tokens, orig_answer_text,
            start_position, end_position, is_impossible))

  if skipped:
    logging.warning(
        "%s: skipped %d of %d training questions whose answer does not match "
        "the context at answer_start (as the original does), e.g. id %s",
        input_file, len(skipped), num_questions, skipped[0])
  return examples, _ReadStats(num_questions, len(skipped), skipped)


def read_squad_examples(input_file, is_training, version_2_with_negative=None):
  """Read a SQuAD json file into a list of SquadExample."""
  if version_2_with_negative is None:
    version_2_with_negative = _flag_value("version_2_with_negative", False)
  examples, _ = _read_squad_examples(input_file, is_training,
                                     version_2_with_negative)
  return examples


_DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def _make_doc_spans(num_tokens, max_tokens_for_doc, doc_stride):
  """Windows of up to max_tokens_for_doc tokens, starting doc_stride apart."""
  doc_spans = []
  start_offset = 0
  while start_offset < num_tokens:
    length = min(num_tokens - start_offset, max_tokens_for_doc)
    doc_spans.append(_DocSpan(start=start_offset, length=length))
    if start_offset + length == num_tokens:
      break
    start_offset += min(length, doc_stride)
  return doc_spans


def _tokenize_document(tokenizer, doc_tokens):
  """(tok_to_orig_index, orig_to_tok_index, WordPieces) of a context."""
  tok_to_orig_index = []
  orig_to_tok_index = []
  all_doc_tokens = []
  for (i, token) in enumerate(doc_tokens):
    orig_to_tok_index.append(len(all_doc_tokens))
    sub_tokens = tokenizer.tokenize(token)
    tok_to_orig_index.extend([i] * len(sub_tokens))
    all_doc_tokens.extend(sub_tokens)
  return tok_to_orig_index, orig_to_tok_index, all_doc_tokens


def convert_examples_to_features(examples, tokenizer, max_seq_length,
                                 doc_stride, max_query_length, is_training,
                                 output_fn, drop_out_of_span_chunks=False):
  """Calls `output_fn(feature)` for each feature, in order; returns their
  number. A paragraph's questions share its doc_tokens (tokenized once)."""
  if doc_stride <= 0:
    raise ValueError("doc_stride must be positive, got %d" % doc_stride)
  unique_id = 1000000000
  num_dropped = 0
  doc_tokens, doc = None, None

  for (example_index, example) in enumerate(examples):
    query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
    if example.doc_tokens is not doc_tokens:
      doc_tokens = example.doc_tokens
      doc = _tokenize_document(tokenizer, doc_tokens)
    tok_to_orig_index, orig_to_tok_index, all_doc_tokens = doc

    if is_training and not example.is_impossible:
      tok_start_position = orig_to_tok_index[example.start_position]
      if example.end_position < len(example.doc_tokens) - 1:
        tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
      else:
        tok_end_position = len(all_doc_tokens) - 1
      (tok_start_position, tok_end_position) = _improve_answer_span(
          all_doc_tokens, tok_start_position, tok_end_position, tokenizer,
          example.orig_answer_text)

    # The -3 accounts for [CLS], [SEP] and [SEP]
    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    if max_tokens_for_doc <= 0:
      raise ValueError(
          "max_seq_length (%d) must be greater than the question length + 3 "
          "(%d); lower --max_query_length or raise --max_seq_length" %
          (max_seq_length, len(query_tokens) + 3))
    doc_spans = _make_doc_spans(len(all_doc_tokens), max_tokens_for_doc,
                                doc_stride)
    doc_offset = len(query_tokens) + 2

    for (doc_span_index, doc_span) in enumerate(doc_spans):
      start_position = None
      end_position = None
      if is_training and example.is_impossible:
        start_position = end_position = 0
      elif is_training:
        doc_end = doc_span.start + doc_span.length - 1
        if (tok_start_position >= doc_span.start and
            tok_end_position <= doc_end):
          start_position = tok_start_position - doc_span.start + doc_offset
          end_position = tok_end_position - doc_span.start + doc_offset
        elif drop_out_of_span_chunks:
          num_dropped += 1
          continue
        else:  # The answer is not in this window: point at [CLS].
          start_position = end_position = 0

      positions = range(doc_span.start, doc_span.start + doc_span.length)
      tokens = (["[CLS]"] + query_tokens + ["[SEP]"] +
                all_doc_tokens[positions.start:positions.stop] + ["[SEP]"])
      token_to_orig_map = {doc_offset + i: tok_to_orig_index[p]
                           for i, p in enumerate(positions)}
      token_is_max_context = {
          doc_offset + i: _check_is_max_context(doc_spans, doc_span_index, p)
          for i, p in enumerate(positions)}
      padding = [0] * (max_seq_length - len(tokens))
      feature = InputFeatures(
          unique_id=unique_id,
          example_index=example_index,
          doc_span_index=doc_span_index,
          tokens=tokens,
          token_to_orig_map=token_to_orig_map,
          token_is_max_context=token_is_max_context,
          input_ids=tokenizer.convert_tokens_to_ids(tokens) + padding,
          input_mask=[1] * len(tokens) + padding,
          segment_ids=([0] * doc_offset + [1] * (doc_span.length + 1) +
                       padding),
          start_position=start_position,
          end_position=end_position,
          is_impossible=example.is_impossible)
      if example_index < 20:
        _log_feature(feature, is_training)
      output_fn(feature)
      unique_id += 1

  if num_dropped:
    logging.info("Dropped %d training windows that do not contain the answer "
                 "(--drop_out_of_span_chunks)", num_dropped)
  return unique_id - 1000000000


def _log_feature(feature, is_training):
  """The original's "*** Example ***" log block."""
  logging.info("*** Example ***")
  for name in ("unique_id", "example_index", "doc_span_index"):
    logging.info("%s: %s", name, getattr(feature, name))
  logging.info("tokens: %s", " ".join(
      [tokenization.printable_text(x) for x in feature.tokens]))
  logging.info("token_to_orig_map: %s", " ".join(
      ["%d:%d" % (x, y) for (x, y) in feature.token_to_orig_map.items()]))
  logging.info("token_is_max_context: %s", " ".join(
      ["%d:%s" % (x, y) for (x, y) in feature.token_is_max_context.items()]))
  for name in ("input_ids", "input_mask", "segment_ids"):
    logging.info("%s: %s", name, " ".join(
        [str(x) for x in getattr(feature, name)]))
  if is_training and feature.is_impossible:
    logging.info("impossible example")
  elif is_training and feature.start_position is not None:
    answer_text = " ".join(
        feature.tokens[feature.start_position:(feature.end_position + 1)])
    logging.info("start_position: %d", feature.start_position)
    logging.info("end_position: %d", feature.end_position)
    logging.info("answer: %s", tokenization.printable_text(answer_text))


def _improve_answer_span(doc_tokens, input_start, input_end, tokenizer,
                         orig_answer_text):
  """Returns tokenized answer spans that better match the annotated answer."""
  # The annotated answer "1895" lies in the whitespace word "(1895-1943).";
  # after WordPiece tokenization ("( 1895 - 1943 ) .") the span can be
  # narrowed to the tokens that spell exactly the answer.
  tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      text_span = " ".join(doc_tokens[new_start:(new_end + 1)])
      if text_span == tok_answer_text:
        return (new_start, new_end)
  return (input_start, input_end)


def _check_is_max_context(doc_spans, cur_span_index, position):
  """Check if this is the 'max context' doc span for the token."""
  # A token in several (overlapping) spans belongs to the one where
  # min(left context, right context) + 0.01 * span length is highest (the
  # first one on ties).
  best_score = None
  best_span_index = None
  for (span_index, doc_span) in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    score = (min(position - doc_span.start, end - position) +
             0.01 * doc_span.length)
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return cur_span_index == best_span_index


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


class SquadModel(tf.Module):
  """BERT plus the start/end pointer head `cls/squad/output_{weights,bias}`."""

  def __init__(self, bert_config, is_training=False, options=None):
    super(SquadModel, self).__init__(name="squad")
    self.is_training = bool(is_training)
    self.bert = modeling.BertModel(bert_config, is_training=is_training,
                                   options=options)
    hidden_size = bert_config.hidden_size
    # The original uses stddev 0.02 here whatever initializer_range says.
    self.output_weights = modeling.create_variable(
        "cls/squad/output_weights", [2, hidden_size],
        modeling.create_initializer(0.02))
    self.output_bias = modeling.create_variable(
        "cls/squad/output_bias", [2], modeling.zeros_initializer)

  def named_variables(self):
    """OrderedDict original name -> variable (bert's, then the head's)."""
    named = collections.OrderedDict(self.bert.named_variables())
    named["cls/squad/output_weights"] = self.output_weights
    named["cls/squad/output_bias"] = self.output_bias
    return named

  def __call__(self, input_ids, input_mask=None, segment_ids=None,
               training=False):
    """Returns (start_logits, end_logits), each float32 [batch, seq_length]."""
    final_hidden = self.bert(input_ids, input_mask=input_mask,
                             token_type_ids=segment_ids,
                             training=training).sequence_output
    batch_size, seq_length, hidden_size = modeling.get_shape_list(
        final_hidden, expected_rank=3)
    logits = tf.matmul(
        tf.reshape(final_hidden, [batch_size * seq_length, hidden_size]),
        self.output_weights, transpose_b=True)
    logits = tf.reshape(tf.nn.bias_add(logits, self.output_bias),
                        [batch_size, seq_length, 2])
    return (logits[:, :, 0], logits[:, :, 1])


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                 use_one_hot_embeddings):
  """Creates a SQuAD model (the original's function); returns the logits."""
  model = SquadModel(bert_config, is_training=is_training,
                     options=modeling.EncoderOptions(use_one_hot_embeddings))
  return model(input_ids, input_mask=input_mask, segment_ids=segment_ids,
               training=is_training)


def squad_loss(start_logits, end_logits, start_positions, end_positions):
  """(start CE + end CE) / 2, each the batch mean of -log softmax[position]."""
  seq_length = modeling.get_shape_list(start_logits, expected_rank=2)[1]

  def compute_loss(logits, positions):
    one_hot_positions = tf.one_hot(positions, depth=seq_length,
                                   dtype=tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(one_hot_positions * log_probs, -1))

  start_loss = compute_loss(start_logits, start_positions)
  end_loss = compute_loss(end_logits, end_positions)
  return (start_loss + end_loss) / 2.0, start_loss, end_loss


class SquadTask(object):
  """SQuAD for the shared loop (see runner.py's task protocol)."""

  def __init__(self, bert_config, options=None):
    self.bert_config = bert_config
    self.options = options   # modeling.EncoderOptions of the encoder

  def create_model(self):
    return SquadModel(self.bert_config, options=self.options)

  def compute_loss(self, model, features, training):
    start_logits, end_logits = model(
        features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"], training=training)
    total_loss, start_loss, end_loss = squad_loss(
        start_logits, end_logits, features["start_positions"],
        features["end_positions"])
    return total_loss, {"start_loss": start_loss, "end_loss": end_loss}

  def eval_metrics(self, model, features):
    # The original supports only TRAIN and PREDICT; scoring answers is done on
    # the predictions (--do_eval). This gives the loss on labelled records.
    loss, _ = self.compute_loss(model, features, training=False)
    return {"loss": (loss, tf.constant(1.0))}

  def predict(self, model, features):
    start_logits, end_logits = model(
        features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"], training=False)
    return {"unique_ids": features["unique_ids"],
            "start_logits": start_logits, "end_logits": end_logits}


def _proto_field(tag, payload):
  """A length-delimited protobuf field: tag byte, varint length, payload."""
  n = len(payload)
  length = bytearray()
  while n > 0x7F:
    length.append((n & 0x7F) | 0x80)
    n >>= 7
  length.append(n)
  return tag + bytes(length) + payload


def _serialize_int64_example(named_values):
  """Serialized `tf.train.Example` of int64 lists, features in the given order.

  The `Features` map is framed here so that its entries keep the original
  files' order (the upb runtime orders map entries differently).
  """
  entries = []
  for name, values in named_values:
    feature = tf.train.Feature(int64_list=tf.train.Int64List(
        value=values)).SerializeToString()
    entry = (_proto_field(b"\x0a", name.encode("utf-8")) +
             _proto_field(b"\x12", feature))
    entries.append(_proto_field(b"\x0a", entry))  # Features.feature (map entry)
  return _proto_field(b"\x0a", b"".join(entries))  # Example.features


class FeatureWriter(object):
  """Writes InputFeature to TF example file."""

  def __init__(self, filename, is_training):
    self.filename = filename
    self.is_training = is_training
    self.num_features = 0
    # Renamed by close(): an interrupted run leaves no half-written file.
    self._tmp_filename = common.temp_name(filename)
    self._writer = tf.io.TFRecordWriter(self._tmp_filename)

  def process_feature(self, feature):
    """Write a InputFeature to the TFRecordWriter as a tf.train.Example."""
    self.num_features += 1
    features = [
        ("unique_ids", [feature.unique_id]),
        ("input_ids", feature.input_ids),
        ("input_mask", feature.input_mask),
        ("segment_ids", feature.segment_ids),
    ]
    if self.is_training:
      features += [("start_positions", [feature.start_position]),
                   ("end_positions", [feature.end_position]),
                   ("is_impossible", [1 if feature.is_impossible else 0])]
    self._writer.write(_serialize_int64_example(features))

  def close(self):
    self._writer.close()
    common.rename(self._tmp_filename, self.filename)


def model_fn_builder(bert_config, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings):
  """The original's builder in its TF2 form (`runner.with_train_args`): the
  SQuAD task for the loop."""
  del use_tpu  # The strategy is the loop's (runner.RunConfig).
  task = SquadTask(bert_config,
            options=modeling.EncoderOptions(use_one_hot_embeddings))
  return runner.with_train_args(task, init_checkpoint, learning_rate,
                                num_train_steps, num_warmup_steps)


def input_fn_builder(input_file, seq_length, is_training, drop_remainder):
  """Creates an `input_fn` closure to be passed to the runner."""

  name_to_features = {
      "unique_ids": tf.io.FixedLenFeature([], tf.int64),
      "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
  }
  if is_training:
    name_to_features["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
    name_to_features["end_positions"] = tf.io.FixedLenFeature([], tf.int64)

  def input_fn(params):
    """The actual input function."""
    d = tf.data.TFRecordDataset(input_file)
    if is_training:
      d = runner.shard_for_context(d, params.get("input_context"))
      d = d.repeat().shuffle(buffer_size=100, seed=params.get("seed"))
    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
    d = d.batch(params["batch_size"], drop_remainder=drop_remainder)
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


# ---------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------

RawResult = collections.namedtuple("RawResult",
                                   ["unique_id", "start_logits", "end_logits"])

_PrelimPrediction = collections.namedtuple(  # pylint: disable=invalid-name
    "PrelimPrediction",
    ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])

_NbestPrediction = collections.namedtuple(  # pylint: disable=invalid-name
    "NbestPrediction", ["text", "start_logit", "end_logit"])

# The score of the missing best non-null answer of a SQuAD 2.0 question
# without one (the original crashed, #211/#476): "" at every threshold.
_NO_SPAN_SCORE = -10000.0

SquadPredictions = collections.namedtuple(
    "SquadPredictions",
    ["predictions", "nbest", "null_odds", "best_non_null_text"])


def _answer_text(example, feature, pred, do_lower_case, verbose_logging):
  """The context text of a predicted WordPiece span."""
  tok_text = " ".join(feature.tokens[pred.start_index:(pred.end_index + 1)])
  # De-tokenize WordPieces that have been split off; clean whitespace.
  tok_text = " ".join(tok_text.replace(" ##", "").replace("##", "").split())
  orig_doc_start = feature.token_to_orig_map[pred.start_index]
  orig_doc_end = feature.token_to_orig_map[pred.end_index]
  orig_text = " ".join(example.doc_tokens[orig_doc_start:(orig_doc_end + 1)])
  return get_final_text(tok_text, orig_text, do_lower_case,
                        verbose_logging=verbose_logging)


def compute_predictions(all_examples, all_features, all_results, n_best_size,
                        max_answer_length, do_lower_case,
                        version_2_with_negative=False,
                        null_score_diff_threshold=0.0, verbose_logging=False):
  """The computation of write_predictions, returning a `SquadPredictions`.

  predictions, nbest and null_odds are the three output files' objects
  (null_odds is empty with v2 off); best_non_null_text maps qas_id to the best
  non-null answer (None if there is none), which the threshold search needs.
  """
  example_index_to_features = collections.defaultdict(list)
  for feature in all_features:
    example_index_to_features[feature.example_index].append(feature)
  unique_id_to_result = {result.unique_id: result for result in all_results}

  all_predictions = collections.OrderedDict()
  all_nbest_json = collections.OrderedDict()
  scores_diff_json = collections.OrderedDict()
  best_non_null_text = collections.OrderedDict()

  for (example_index, example) in enumerate(all_examples):
    features = example_index_to_features[example_index]
    prelim_predictions = []
    # SQuAD 2.0: the window with the lowest null score (start+end logit at
    # position 0) gives the null answer.
    score_null = 1000000  # large and positive
    min_null_feature_index = 0
    null_start_logit = 0
    null_end_logit = 0
    for (feature_index, feature) in enumerate(features):
      if feature.unique_id not in unique_id_to_result:
        raise ValueError("no model result for feature unique_id %d (question "
                         "%s)" % (feature.unique_id, example.qas_id))
      result = unique_id_to_result[feature.unique_id]
      start_logits = _as_float_list(result.start_logits)
      end_logits = _as_float_list(result.end_logits)
      if (version_2_with_negative and
          start_logits[0] + end_logits[0] < score_null):
        score_null = start_logits[0] + end_logits[0]
        min_null_feature_index = feature_index
        null_start_logit = start_logits[0]
        null_end_logit = end_logits[0]
      end_indexes = _get_best_indexes(end_logits, n_best_size)
      # Valid spans lie in the document part of the window and start where
      # the window gives the token its maximum context.
      for start_index in _get_best_indexes(start_logits, n_best_size):
        if (start_index not in feature.token_to_orig_map or
            not feature.token_is_max_context.get(start_index, False)):
          continue
        for end_index in end_indexes:
          if (end_index not in feature.token_to_orig_map or
              end_index < start_index or
              end_index - start_index + 1 > max_answer_length):
            continue
          prelim_predictions.append(_PrelimPrediction(
              feature_index, start_index, end_index, start_logits[start_index],
              end_logits[end_index]))

    if version_2_with_negative:
      if not features:
        # An empty context has no windows; the original crashed (IndexError).
        score_null = null_start_logit = null_end_logit = 0.0
      prelim_predictions.append(_PrelimPrediction(
          min_null_feature_index, 0, 0, null_start_logit, null_end_logit))
    prelim_predictions.sort(key=lambda x: (x.start_logit + x.end_logit),
                            reverse=True)

    seen_predictions = set()
    nbest = []
    for pred in prelim_predictions:
      if len(nbest) >= n_best_size:
        break
      final_text = ""
      if pred.start_index > 0:  # this is a non-null prediction
        final_text = _answer_text(example, features[pred.feature_index], pred,
                                  do_lower_case, verbose_logging)
        if final_text in seen_predictions:
          continue
      seen_predictions.add(final_text)
      nbest.append(_NbestPrediction(final_text, pred.start_logit,
                                    pred.end_logit))

    if version_2_with_negative and "" not in seen_predictions:
      nbest.append(_NbestPrediction("", null_start_logit, null_end_logit))
    # In very rare edge cases no span is valid: a nonce prediction.
    if not nbest:
      nbest.append(_NbestPrediction("empty", 0.0, 0.0))

    probs = _compute_softmax([e.start_logit + e.end_logit for e in nbest])
    all_nbest_json[example.qas_id] = [collections.OrderedDict([
        ("text", e.text), ("probability", p), ("start_logit", e.start_logit),
        ("end_logit", e.end_logit)]) for e, p in zip(nbest, probs)]
    best_non_null_entry = next((e for e in nbest if e.text), None)

    qas_id = example.qas_id
    if not version_2_with_negative:
      all_predictions[qas_id] = best_non_null_text[qas_id] = nbest[0].text
    elif best_non_null_entry is None:  # The original crashed; _NO_SPAN_SCORE.
      scores_diff_json[qas_id] = score_null - _NO_SPAN_SCORE
      all_predictions[qas_id] = ""
      best_non_null_text[qas_id] = None
    else:
      # Predict "" iff the null score - the best non-null score > threshold.
      score_diff = (score_null - best_non_null_entry.start_logit -
                    best_non_null_entry.end_logit)
      scores_diff_json[qas_id] = score_diff
      all_predictions[qas_id] = best_non_null_entry.text
      if score_diff > null_score_diff_threshold:
        all_predictions[qas_id] = ""
      best_non_null_text[qas_id] = best_non_null_entry.text

  return SquadPredictions(all_predictions, all_nbest_json, scores_diff_json,
                          best_non_null_text)


def _as_float_list(values):
  return values.tolist() if isinstance(values, np.ndarray) else values


def write_predictions(all_examples, all_features, all_results, n_best_size,
                      max_answer_length, do_lower_case, output_prediction_file,
                      output_nbest_file, output_null_log_odds_file,
                      version_2_with_negative=None,
                      null_score_diff_threshold=None, verbose_logging=None):
  """Write final predictions to the json file and log-odds of null if needed.

  The three flags the original read from FLAGS can be passed as arguments; left
  at None they come from the parsed flags (or the original defaults). Returns
  the `SquadPredictions` that were written.
  """
  if version_2_with_negative is None:
    version_2_with_negative = _flag_value("version_2_with_negative", False)
  if null_score_diff_threshold is None:
    null_score_diff_threshold = _flag_value("null_score_diff_threshold", 0.0)
  if verbose_logging is None:
    verbose_logging = _flag_value("verbose_logging", False)
  logging.info("Writing predictions to: %s", output_prediction_file)
  logging.info("Writing nbest to: %s", output_nbest_file)

  result = compute_predictions(
      all_examples, all_features, all_results, n_best_size, max_answer_length,
      do_lower_case, version_2_with_negative=version_2_with_negative,
      null_score_diff_threshold=null_score_diff_threshold,
      verbose_logging=verbose_logging)

  common.write_text(output_prediction_file,
                     json.dumps(result.predictions, indent=4) + "\n")
  common.write_text(output_nbest_file,
                     json.dumps(result.nbest, indent=4) + "\n")
  if version_2_with_negative:
    common.write_text(output_null_log_odds_file,
                       json.dumps(result.null_odds, indent=4) + "\n")
  return result


def _project_position(position, tok_text, orig_text):
  """Index in orig_text of tok_text[position], aligned without U+0020 spaces.

  None when tok_text[position] is a space or out of range (the original's
  "Couldn't map" cases). Both texts have the same number of non-space chars.
  """
  if position < 0 or position >= len(tok_text) or tok_text[position] == " ":
    return None
  ns_index = position - tok_text.count(" ", 0, position)
  offset = 0
  for piece in orig_text.split(" "):
    if ns_index < len(piece):
      return offset + ns_index
    ns_index -= len(piece)
    offset += len(piece) + 1
  return None


def get_final_text(pred_text, orig_text, do_lower_case, verbose_logging=None):
  """Project the tokenized prediction back to the original text."""
  # `orig_text` (whole words of the context) may hold more than the
  # prediction ("Steve Smith's" for "steve smith"): re-tokenize it with the
  # basic tokenizer, find `pred_text` there and map the match back through
  # the two space-free strings, which must have the same length (otherwise
  # return `orig_text`).
  if verbose_logging is None:
    verbose_logging = _flag_value("verbose_logging", False)

  def give_up(message, *args):
    if verbose_logging:
      logging.info(message, *args)
    return orig_text

  tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tok_text = " ".join(tokenizer.tokenize(orig_text))
  start_position = tok_text.find(pred_text)
  if start_position == -1:
    return give_up("Unable to find text: '%s' in '%s'", pred_text, orig_text)
  end_position = start_position + len(pred_text) - 1
  orig_ns_text = orig_text.replace(" ", "")
  tok_ns_text = tok_text.replace(" ", "")
  if len(orig_ns_text) != len(tok_ns_text):
    return give_up("Length not equal after stripping spaces: '%s' vs '%s'",
                   orig_ns_text, tok_ns_text)
  orig_start_position = _project_position(start_position, tok_text, orig_text)
  if orig_start_position is None:
    return give_up("Couldn't map start position")
  orig_end_position = _project_position(end_position, tok_text, orig_text)
  if orig_end_position is None:
    return give_up("Couldn't map end position")
  return orig_text[orig_start_position:(orig_end_position + 1)]


def _get_best_indexes(logits, n_best_size):
  """Get the n-best logits from a list (ties: the lower position first)."""
  by_score = sorted(range(len(logits)), key=logits.__getitem__, reverse=True)
  return by_score[:n_best_size]


def _compute_softmax(scores):
  """Compute softmax probability over raw logits."""
  if not scores:
    return []
  max_score = max(scores)
  exp_scores = [math.exp(score - max_score) for score in scores]
  total_sum = 0.0
  for x in exp_scores:  # Added in order (not sum(): the same bits as before).
    total_sum += x
  return [x / total_sum for x in exp_scores]


# ---------------------------------------------------------------------------
# EM / F1 (what the official SQuAD v1.1 and v2.0 evaluation scripts compute)
# ---------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s):
  """Lower case, drop ASCII punctuation and articles a/an/the, squash spaces."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in _PUNCTUATION)
  s = _ARTICLES_RE.sub(" ", s)
  return " ".join(s.split())


def _exact_score(prediction, gold):
  return int(normalize_answer(prediction) == normalize_answer(gold))


def _f1_score(prediction, gold, version_2):
  """Token-overlap F1 of the normalised strings.

  SQuAD 2.0 scores an empty prediction or empty gold answer 1 if both are
  empty, else 0; SQuAD 1.1 has no such rule (no overlap gives 0).
  """
  pred_tokens = normalize_answer(prediction).split()
  gold_tokens = normalize_answer(gold).split()
  if version_2 and (not pred_tokens or not gold_tokens):
    return float(pred_tokens == gold_tokens)
  common = (collections.Counter(pred_tokens) &
            collections.Counter(gold_tokens))
  num_same = sum(common.values())
  if num_same == 0:
    return 0
  precision = 1.0 * num_same / len(pred_tokens)
  recall = 1.0 * num_same / len(gold_tokens)
  return (2 * precision * recall) / (precision + recall)


def _gold_questions(articles, input_file="predict_file"):
  """[(qas_id, [gold answer texts])] in file order, from a SQuAD "data" list."""
  out = []
  for article_index, article in enumerate(articles):
    where = "article %d" % article_index
    for paragraph_index, paragraph in enumerate(
        _field(article, "paragraphs", where, input_file, list)):
      pwhere = "%s, paragraph %d" % (where, paragraph_index)
      for qa_index, qa in enumerate(
          _field(paragraph, "qas", pwhere, input_file, list)):
        qwhere = "%s, question %d" % (pwhere, qa_index)
        qas_id = _field(qa, "id", qwhere, input_file)
        answers = _field(qa, "answers", "%s (id %s)" % (qwhere, qas_id),
                         input_file, list)
        out.append((qas_id, [_field(a, "text", "an answer of question id %s" %
                                    qas_id, input_file, str)
                             for a in answers]))
  return out


def _scored_questions(gold, predictions, version_2):
  """[(qas_id, EM, F1)] per question of the file (max over gold answers);
  a question without a prediction scores 0."""
  scored = []
  missing = 0
  for qas_id, answers in gold:
    if version_2:
      answers = [a for a in answers if normalize_answer(a)] or [""]
    if qas_id not in predictions:
      missing += 1
      scored.append((qas_id, 0, 0))
      continue
    prediction = predictions[qas_id]
    scored.append((
        qas_id, max((_exact_score(prediction, a) for a in answers), default=0),
        max((_f1_score(prediction, a, version_2) for a in answers),
            default=0)))
  if missing:
    logging.warning("%d of %d questions have no prediction; they score 0",
                    missing, len(gold))
  return scored


def _raw_scores(gold, predictions, version_2):
  """Per-question-id EM and F1 dicts (a repeated id keeps its last entry, as
  the official v2.0 script's dicts do)."""
  scored = _scored_questions(gold, predictions, version_2)
  exact = collections.OrderedDict((k, e) for k, e, _ in scored)
  f1 = collections.OrderedDict((k, f) for k, _, f in scored)
  return exact, f1


def evaluate_v1(articles, predictions):
  """SQuAD v1.1 exact_match and f1 (percent) over every question of the file.

  As the official v1.1 script, every question entry counts, a repeated id as
  often as it occurs (in the total and in the sums).
  """
  scored = _scored_questions(_gold_questions(articles), predictions, False)
  total = max(len(scored), 1)
  return collections.OrderedDict([
      ("exact_match", 100.0 * sum(e for _, e, _ in scored) / total),
      ("f1", 100.0 * sum(f for _, _, f in scored) / total),
  ])


def _summary(exact, f1, qids):
  total = len(qids)
  return collections.OrderedDict([
      ("exact", 100.0 * sum(exact[k] for k in qids) / max(total, 1)),
      ("f1", 100.0 * sum(f1[k] for k in qids) / max(total, 1)),
      ("total", total),
  ])


def _official_best_thresh(predictions, scores, na_probs, has_ans):
  """The v2.0 script's threshold sweep over na_probs (its best_* numbers)."""
  cur_score = best_score = sum(1 for k in has_ans if not has_ans[k])
  best_thresh = 0.0
  for qas_id in sorted(na_probs, key=lambda k: na_probs[k]):
    if qas_id not in scores:
      continue
    if has_ans[qas_id]:
      cur_score += scores[qas_id]
    elif predictions.get(qas_id):
      cur_score -= 1
    if cur_score > best_score:
      best_score = cur_score
      best_thresh = na_probs[qas_id]
  return 100.0 * best_score / max(len(scores), 1), best_thresh


def evaluate_v2(articles, predictions, na_probs=None, na_prob_thresh=1.0):
  """SQuAD v2.0 metrics, as the official script with `--na-prob-file`.

  A question whose na_prob (here: null odds) exceeds `na_prob_thresh` counts
  as answered "no answer"; with na_probs the best_exact/best_f1 sweep is added.
  """
  gold = _gold_questions(articles)
  has_ans = collections.OrderedDict(
      (qas_id, bool(answers)) for qas_id, answers in gold)
  exact_raw, f1_raw = _raw_scores(gold, predictions, version_2=True)
  exact = collections.OrderedDict()
  f1 = collections.OrderedDict()
  for qas_id in exact_raw:
    if (na_probs or {}).get(qas_id, 0.0) > na_prob_thresh:
      exact[qas_id] = f1[qas_id] = float(not has_ans[qas_id])
    else:
      exact[qas_id] = exact_raw[qas_id]
      f1[qas_id] = f1_raw[qas_id]
  out = _summary(exact, f1, list(exact))
  for prefix, answerable in (("HasAns_", True), ("NoAns_", False)):
    qids = [k for k, v in has_ans.items() if v == answerable]
    if qids:
      summary = _summary(exact, f1, qids)
      out.update((prefix + k, v) for k, v in summary.items())
  if na_probs is not None:
    out["best_exact"], out["best_exact_thresh"] = _official_best_thresh(
        predictions, exact_raw, na_probs, has_ans)
    out["best_f1"], out["best_f1_thresh"] = _official_best_thresh(
        predictions, f1_raw, na_probs, has_ans)
  return out


def search_null_threshold(articles, best_non_null_text, null_odds):
  """Best null_score_diff_threshold for F1, with the EM/F1 it gives.

  Exact: at threshold t a question is answered "" iff its null odds > t, else
  with its best non-null answer (never available for the questions the original
  crashed on, which stay ""). Every distinct odds value is tried, plus one
  below all of them (everything null). Returns an OrderedDict with
  best_null_score_diff_threshold, exact, f1, HasAns_*/NoAns_* at it.
  """
  gold = _gold_questions(articles)
  answered = {k: v for k, v in best_non_null_text.items() if v is not None}
  null_preds = {k: "" for k, _ in gold}
  _, f_ans = _raw_scores(gold, dict(null_preds, **answered), version_2=True)
  _, f_null = _raw_scores(gold, null_preds, version_2=True)
  qids = [k for k, _ in gold]
  odds = {k: null_odds.get(k, float("inf")) for k in qids}
  order = sorted(qids, key=lambda k: odds[k])
  # Start with every question null, then let them answer in odds order.
  cur_f1 = sum(f_null.values())
  candidates = [(cur_f1, (odds[order[0]] - 1.0) if order else 0.0)]
  i = 0
  while i < len(order):
    t = odds[order[i]]
    while i < len(order) and odds[order[i]] == t:
      if order[i] in answered:
        cur_f1 += f_ans[order[i]] - f_null[order[i]]
      i += 1
    if t != float("inf"):
      candidates.append((cur_f1, t))
  best_t = max(candidates, key=lambda c: c[0])[1]
  preds = {k: ("" if odds[k] > best_t or k not in answered else answered[k])
           for k in qids}
  out = collections.OrderedDict([("best_null_score_diff_threshold", best_t)])
  out.update(evaluate_v2(articles, preds))
  return out


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def validate_flags_or_throw(bert_config):
  """Validate the input FLAGS or throw an exception."""
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)

  if not FLAGS.do_train and not FLAGS.do_predict and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train`, `do_predict` or `do_eval` "
                     "must be True.")

  if FLAGS.do_train and not FLAGS.train_file:
    raise ValueError(
        "If `do_train` is True, then `train_file` must be specified.")
  if (FLAGS.do_predict or FLAGS.do_eval) and not FLAGS.predict_file:
    raise ValueError(
        "If `do_predict` or `do_eval` is True, then `predict_file` must be "
        "specified.")

  if (bert_config is not None and
      FLAGS.max_seq_length > bert_config.max_position_embeddings):
    raise ValueError(
        "Cannot use sequence length %d because the BERT model "
        "was only trained up to sequence length %d (--max_seq_length must be "
        "<= max_position_embeddings of %s)" %
        (FLAGS.max_seq_length, bert_config.max_position_embeddings,
         FLAGS.bert_config_file))

  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise ValueError(
        "The max_seq_length (%d) must be greater than max_query_length "
        "(%d) + 3: raise --max_seq_length or lower --max_query_length" %
        (FLAGS.max_seq_length, FLAGS.max_query_length))

  for name in ("doc_stride", "n_best_size", "max_answer_length",
               "train_batch_size", "predict_batch_size"):
    if FLAGS[name].value < 1:
      raise ValueError("--%s must be at least 1, got %d" %
                       (name, FLAGS[name].value))

  if FLAGS.null_threshold_search and not FLAGS.version_2_with_negative:
    raise ValueError("--null_threshold_search needs "
                     "--version_2_with_negative=true (SQuAD 2.0 null odds)")


def _log_and_write_json(path, results, header):
  logging.info(header)
  for key, value in results.items():
    logging.info("  %s = %s", key, value)
  common.write_text(path, json.dumps(results, indent=2) + "\n")


def _read_output_json(output_dir, name, what):
  path = os.path.join(output_dir, name)
  return _read_json(path, "--do_eval: %s %s not found; run with --do_predict "
                    "first (or in the same command)" % (what, path))


def run_eval(predict_file, output_dir, version_2_with_negative,
             null_threshold_search=False):
  """Scores output_dir's prediction files against predict_file's answers.

  Writes and returns `eval_results.json`'s dict: for SQuAD 1.1 what
  evaluate-v1.1.py prints (exact_match, f1); for SQuAD 2.0 what
  evaluate-v2.0.py prints with `--na-prob-file null_odds.json` (exact, f1,
  total, HasAns_*, NoAns_*, best_exact(_thresh), best_f1(_thresh)), plus the
  threshold search when asked.
  """
  articles = _load_squad_json(predict_file)
  predictions = _read_output_json(output_dir, "predictions.json",
                                  "predictions file")
  if version_2_with_negative:
    null_odds = _read_output_json(output_dir, "null_odds.json",
                                  "null odds file")
    results = evaluate_v2(articles, predictions, na_probs=null_odds)
  else:
    results = evaluate_v1(articles, predictions)
  if null_threshold_search:
    nbest = _read_output_json(output_dir, "nbest_predictions.json",
                              "n-best file")
    best_non_null = {qas_id: next((e["text"] for e in entries if e["text"]),
                                  None)
                     for qas_id, entries in nbest.items()}
    search = search_null_threshold(articles, best_non_null, null_odds)
    logging.info(
        "Best --null_score_diff_threshold=%r: exact %.2f, f1 %.2f (at the "
        "threshold used, %r: exact %.2f, f1 %.2f)",
        search["best_null_score_diff_threshold"], search["exact"],
        search["f1"], _flag_value("null_score_diff_threshold", 0.0),
        results["exact"], results["f1"])
    results["best_null_score_diff_threshold"] = search[
        "best_null_score_diff_threshold"]
    for key, value in search.items():
      if key != "best_null_score_diff_threshold":
        results["at_best_threshold_" + key] = value
  _log_and_write_json(os.path.join(output_dir, "eval_results.json"), results,
                      "***** Eval results (%s) *****" % predict_file)
  return results


_HEAD_VARIABLES = ("cls/squad/output_weights", "cls/squad/output_bias")


def _train(cfg, task, tokenizer):
  """--do_train: features of --train_file, then the loop."""
  train_examples = read_squad_examples(FLAGS.train_file, is_training=True)
  # As the original: the step count comes from the number of questions, not
  # of the (more numerous) windows they are split into.
  num_train_steps, num_warmup_steps = runner.epoch_steps(
      len(train_examples), FLAGS.train_batch_size, FLAGS.num_train_epochs,
      FLAGS.warmup_proportion, what="training questions")

  # Pre-shuffled, so that the input_fn's shuffle buffer can stay small.
  random.Random(12345).shuffle(train_examples)
  train_writer = FeatureWriter(
      os.path.join(FLAGS.output_dir, "train.tf_record"), is_training=True)
  convert_examples_to_features(
      train_examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride,
      FLAGS.max_query_length, True, train_writer.process_feature,
      drop_out_of_span_chunks=FLAGS.drop_out_of_span_chunks)
  train_writer.close()

  logging.info("***** Running training *****")
  logging.info("  Num orig examples = %d", len(train_examples))
  logging.info("  Num split examples = %d", train_writer.num_features)
  logging.info("  Batch size = %d", FLAGS.train_batch_size)
  logging.info("  Num steps = %d", num_train_steps)
  del train_examples

  train_input_fn = input_fn_builder(train_writer.filename,
                                    FLAGS.max_seq_length, is_training=True,
                                    drop_remainder=True)
  runner.train(cfg, task, train_input_fn, num_train_steps, num_warmup_steps,
               FLAGS.learning_rate, init_checkpoint=FLAGS.init_checkpoint,
               train_batch_size=FLAGS.train_batch_size)


def _predict(cfg, task, tokenizer):
  """--do_predict: features of --predict_file, the model, the three files."""
  eval_examples = read_squad_examples(FLAGS.predict_file, is_training=False)
  eval_writer = FeatureWriter(
      os.path.join(FLAGS.output_dir, "eval.tf_record"), is_training=False)
  eval_features = []

  def append_feature(feature):
    eval_features.append(feature)
    eval_writer.process_feature(feature)

  convert_examples_to_features(
      eval_examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride,
      FLAGS.max_query_length, False, append_feature)
  eval_writer.close()

  logging.info("***** Running predictions *****")
  logging.info("  Num orig examples = %d", len(eval_examples))
  logging.info("  Num split examples = %d", len(eval_features))
  logging.info("  Batch size = %d", FLAGS.predict_batch_size)

  model, _, path = runner.load_model(cfg, task,
                                     init_checkpoint=FLAGS.init_checkpoint)
  checkpoints.check_head_is_trained(path, _HEAD_VARIABLES, "SQuAD",
                                    FLAGS.allow_untrained_head,
                                    "--do_predict")

  predict_input_fn = input_fn_builder(eval_writer.filename,
                                      FLAGS.max_seq_length, is_training=False,
                                      drop_remainder=False)

  all_results = []
  start = time.time()
  for result in runner.predict(cfg, task, predict_input_fn,
                               FLAGS.predict_batch_size, model=model):
    if len(all_results) % 1000 == 0:
      logging.info("Processing example: %d", len(all_results))
    all_results.append(RawResult(
        int(result["unique_ids"]), result["start_logits"].ravel().tolist(),
        result["end_logits"].ravel().tolist()))
  logging.info("Predicted %d features in %.1f s", len(all_results),
               time.time() - start)

  write_predictions(eval_examples, eval_features, all_results,
                    FLAGS.n_best_size, FLAGS.max_answer_length,
                    FLAGS.do_lower_case,
                    os.path.join(FLAGS.output_dir, "predictions.json"),
                    os.path.join(FLAGS.output_dir, "nbest_predictions.json"),
                    os.path.join(FLAGS.output_dir, "null_odds.json"))


def main(_):
  logging.set_verbosity(logging.INFO)

  # --do_eval alone scores existing prediction files: no model is needed.
  bert_config = None
  if FLAGS.do_train or FLAGS.do_predict:
    for name in ("vocab_file", "bert_config_file"):
      if not FLAGS[name].value:
        raise common.UserError("--%s is required with --do_train or "
                               "--do_predict." % name)
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)

  validate_flags_or_throw(bert_config)

  runner.prepare_output_dir(FLAGS.output_dir)

  if bert_config is not None:
    tokenizer = tokenization.FullTokenizer(
        vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case)
    modeling.check_vocab_size(FLAGS.vocab_file, bert_config)
    cfg = runner.RunConfig.from_flags(FLAGS, output_dir=FLAGS.output_dir)
    task = SquadTask(bert_config, options=cfg.encoder_options)

  if FLAGS.do_train:
    _train(cfg, task, tokenizer)

  if FLAGS.do_predict:
    _predict(cfg, task, tokenizer)

  if FLAGS.do_eval:
    run_eval(FLAGS.predict_file, FLAGS.output_dir,
             FLAGS.version_2_with_negative,
             null_threshold_search=FLAGS.null_threshold_search)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("output_dir")
  app.run(common.main_wrapper(main))
