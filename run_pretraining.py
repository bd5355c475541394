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
"""Run masked LM/next sentence masked_lm pre-training for BERT.

The command lines of the original `run_pretraining.py` run unchanged and write
the same files (`model.ckpt-N`, `checkpoint`, `eval_results.txt`). The model is
the original `BertModel` with the masked-LM head (`cls/predictions/...`, decoder
tied to the word embeddings) and the next-sentence head
(`cls/seq_relationship/...`); TPUEstimator is replaced by the shared TF2 loop in
`runner.py`.
"""

import collections
import os

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

import modeling
import optimization  # pylint: disable=unused-import
import runner

FLAGS = flags.FLAGS

# Names of the features written by create_pretraining_data.py, in its order.
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")


# ----------------------------------------------------------------------------
# Model: BertModel + the original pretraining heads.
# ----------------------------------------------------------------------------


PretrainingOutputs = collections.namedtuple("PretrainingOutputs", [
    "masked_lm_loss", "masked_lm_example_loss", "masked_lm_log_probs",
    "next_sentence_loss", "next_sentence_example_loss",
    "next_sentence_log_probs", "total_loss"
])


class PretrainingModel(tf.Module):
  """BERT with the original masked-LM and next-sentence heads.

  Variables, after the encoder's `bert/...`: cls/predictions/transform/dense
  [H, H] (+ bias) and LayerNorm, cls/predictions/output_bias [V],
  cls/seq_relationship/output_weights [2, H] and output_bias [2]. The MLM
  decoder is `bert/embeddings/word_embeddings`, transposed.
  """

  def __init__(self, bert_config, is_training=False, options=None):
    super(PretrainingModel, self).__init__(name="pretraining")
    self.config = bert_config
    self.bert = modeling.BertModel(config=bert_config, is_training=is_training,
                                   options=options)
    width = bert_config.hidden_size
    init = modeling.create_initializer(bert_config.initializer_range)
    self.transform = modeling.Dense(
        "cls/predictions/transform/dense", width, width,
        activation=bert_config.hidden_act, kernel_initializer=init)
    self.transform_layer_norm = modeling.LayerNorm(
        "cls/predictions/transform/LayerNorm", width)
    self.output_bias = modeling.create_variable(
        "cls/predictions/output_bias", [bert_config.vocab_size],
        modeling.zeros_initializer)
    self.seq_relationship_weights = modeling.create_variable(
        "cls/seq_relationship/output_weights", [2, width], init)
    self.seq_relationship_bias = modeling.create_variable(
        "cls/seq_relationship/output_bias", [2], modeling.zeros_initializer)

  def named_variables(self):
    """OrderedDict original name -> variable (encoder first, then the heads)."""
    named = collections.OrderedDict(self.bert.named_variables())
    named.update(self.transform.named_variables())
    named.update(self.transform_layer_norm.named_variables())
    named["cls/predictions/output_bias"] = self.output_bias
    named["cls/seq_relationship/output_weights"] = self.seq_relationship_weights
    named["cls/seq_relationship/output_bias"] = self.seq_relationship_bias
    return named

  # Plain Python control flow on static values only: no autograph needed.
  @tf.autograph.experimental.do_not_convert
  def __call__(self, features, training=False):
    """Encoder and both heads on a feature dict -> PretrainingOutputs."""
    outputs = self.bert(features["input_ids"],
                        input_mask=features["input_mask"],
                        token_type_ids=features["segment_ids"],
                        training=training)
    masked_lm = get_masked_lm_output(
        self.config, outputs.sequence_output, self.bert.get_embedding_table(),
        features["masked_lm_positions"], features["masked_lm_ids"],
        features["masked_lm_weights"], model=self)
    next_sentence = get_next_sentence_output(
        self.config, outputs.pooled_output, features["next_sentence_labels"],
        model=self)
    # The three outputs of each head, then the total loss.
    return PretrainingOutputs(*masked_lm, *next_sentence,
                              masked_lm[0] + next_sentence[0])


def get_masked_lm_output(bert_config, input_tensor, output_weights, positions,
                         label_ids, label_weights, model):
  """Get loss and log probs for the masked LM.

  `label_weights` is 1.0 for a real prediction, 0.0 for padding; `model` owns
  the `cls/predictions` variables. Returns (loss, per_example_loss [batch * n],
  log_probs [batch * n, vocab]).
  """
  logits = masked_lm_logits(model, input_tensor, output_weights, positions)
  log_probs = tf.nn.log_softmax(logits, axis=-1)

  label_ids = tf.reshape(label_ids, [-1])
  label_weights = tf.reshape(tf.cast(label_weights, tf.float32), [-1])

  one_hot_labels = tf.one_hot(label_ids, depth=bert_config.vocab_size,
                              dtype=tf.float32)
  # `positions` may be zero-padded: `label_weights` leaves the padding out.
  # (TF's fused sparse softmax cross-entropy measured no faster here: 0.99x
  # on BERT-Mini W3, bench/bench_ab.py-style A/B, 5 Dec 2026.)
  per_example_loss = -tf.reduce_sum(log_probs * one_hot_labels, axis=[-1])
  numerator = tf.reduce_sum(label_weights * per_example_loss)
  denominator = tf.reduce_sum(label_weights) + 1e-5
  return (numerator / denominator, per_example_loss, log_probs)


def masked_lm_logits(model, input_tensor, output_weights, positions):
  """The masked-LM head (also run_fill_mask.py's): float32 logits
  [batch * n, vocab] of the sequence output at `positions` [batch, n]; the
  decoder is `output_weights`, the word-embedding table."""
  compute_dtype = model.bert.compute_dtype
  # One more non-linear transformation, only at the masked positions.
  input_tensor = gather_indexes(input_tensor, positions)
  input_tensor = model.transform(_cast(input_tensor, compute_dtype))
  input_tensor = model.transform_layer_norm(input_tensor)

  logits = tf.matmul(_cast(input_tensor, compute_dtype),
                     _cast(output_weights, compute_dtype), transpose_b=True)
  return tf.nn.bias_add(_cast(logits, tf.float32), model.output_bias)


def get_next_sentence_output(bert_config, input_tensor, labels, model):
  """Get loss and log probs for the next sentence prediction: 0 is "next
  sentence", 1 "random sentence". Returns (loss, per_example_loss [batch],
  log_probs [batch, 2])."""
  del bert_config
  input_tensor = tf.cast(input_tensor, tf.float32)
  logits = tf.matmul(input_tensor, model.seq_relationship_weights,
                     transpose_b=True)
  logits = tf.nn.bias_add(logits, model.seq_relationship_bias)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  labels = tf.reshape(labels, [-1])
  one_hot_labels = tf.one_hot(labels, depth=2, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
  return (tf.reduce_mean(per_example_loss), per_example_loss, log_probs)


def gather_indexes(sequence_tensor, positions):
  """Gathers the vectors at the specific positions over a minibatch:
  [batch, seq, width] and [batch, n] -> [batch * n, width]."""
  batch_size, seq_length, width = modeling.get_shape_list(sequence_tensor,
                                                          expected_rank=3)
  positions = tf.cast(positions, tf.int32)
  flat_offsets = tf.reshape(
      tf.range(0, batch_size, dtype=tf.int32) * seq_length, [-1, 1])
  flat_positions = tf.reshape(positions + flat_offsets, [-1])
  flat_sequence_tensor = tf.reshape(sequence_tensor,
                                    [batch_size * seq_length, width])
  return tf.gather(flat_sequence_tensor, flat_positions)


def _cast(x, dtype):
  x = tf.convert_to_tensor(x)
  return x if x.dtype == dtype else tf.cast(x, dtype)


# ----------------------------------------------------------------------------
# The task for the shared loop (replaces model_fn_builder).
# ----------------------------------------------------------------------------


class PretrainingTask(object):
  """Masked LM + next sentence prediction for `runner.train/evaluate/predict`."""

  def __init__(self, bert_config, options=None):
    self.bert_config = bert_config
    self.options = options

  def create_model(self):
    return PretrainingModel(self.bert_config, options=self.options)

  def compute_loss(self, model, features, training):
    out = model(features, training=training)
    return out.total_loss, {
        "masked_lm_loss": out.masked_lm_loss,
        "next_sentence_loss": out.next_sentence_loss,
    }

  def eval_metrics(self, model, features):
    """The original metric_fn as (numerator, denominator) streaming sums:
    the masked LM's weighted by masked_lm_weights, `loss` the mean total loss
    over eval batches (Estimator's `loss`)."""
    out = model(features, training=False)
    masked_lm_weights = tf.reshape(
        tf.cast(features["masked_lm_weights"], tf.float32), [-1])
    masked_lm_correct = _correct(out.masked_lm_log_probs,
                                 features["masked_lm_ids"])
    weight_sum = tf.reduce_sum(masked_lm_weights)
    next_sentence_correct = _correct(out.next_sentence_log_probs,
                                     features["next_sentence_labels"])
    count = tf.cast(tf.size(next_sentence_correct), tf.float32)
    return {
        "masked_lm_accuracy": (
            tf.reduce_sum(masked_lm_correct * masked_lm_weights), weight_sum),
        "masked_lm_loss": (
            tf.reduce_sum(out.masked_lm_example_loss * masked_lm_weights),
            weight_sum),
        "next_sentence_accuracy": (tf.reduce_sum(next_sentence_correct), count),
        "next_sentence_loss": (tf.reduce_sum(out.next_sentence_example_loss),
                               count),
        "loss": (out.total_loss, tf.constant(1.0)),
    }

  def predict(self, model, features):
    """Per-example MLM predictions and next-sentence probabilities."""
    out = model(features, training=False)
    positions = modeling.get_shape_list(features["masked_lm_positions"],
                                        expected_rank=2)
    predictions = tf.argmax(out.masked_lm_log_probs, axis=-1,
                            output_type=tf.int32)
    return {
        "masked_lm_predictions": tf.reshape(predictions, positions),
        "next_sentence_probabilities": tf.exp(out.next_sentence_log_probs),
    }


def _correct(log_probs, labels):
  """1.0 where the argmax of `log_probs` is the (flattened) label, else 0.0."""
  predictions = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
  labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
  return tf.cast(tf.equal(predictions, labels), tf.float32)


def model_fn_builder(bert_config, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings):
  """The original's builder in its TF2 form (`runner.with_train_args`): the
  pretraining task for the loop."""
  del use_tpu  # The strategy is the loop's (runner.RunConfig).
  task = PretrainingTask(bert_config,
            options=modeling.EncoderOptions(use_one_hot_embeddings))
  return runner.with_train_args(task, init_checkpoint, learning_rate,
                                num_train_steps, num_warmup_steps)


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training, num_cpu_threads=4, seed=None):
  """Creates an `input_fn` closure to be passed to the runner.

  The original pipeline: training interleaves `min(num_cpu_threads, files)`
  files in a repeated, shuffled order (non-deterministic), shuffles with a
  buffer of 100; evaluation reads the files in order, repeated. Both drop the
  remainder; int64 features become int32. `seed` (new) seeds both shuffles
  and makes the interleave deterministic.
  """
  input_files = list(input_files)
  name_to_features = {
      "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
      "masked_lm_positions":
          tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_weights":
          tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
      "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
  }

  def input_fn(params):
    batch_size = params["batch_size"]
    ctx = params.get("input_context")
    pipelines = ctx.num_input_pipelines if ctx is not None else 1
    pipeline_id = ctx.input_pipeline_id if ctx is not None else 0
    shard_files = pipelines > 1 and len(input_files) >= pipelines

    if is_training:
      d = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
      if shard_files:
        d = d.shard(pipelines, pipeline_id)
      d = d.repeat().shuffle(buffer_size=len(input_files), seed=seed)

      n_files = len(input_files) // pipelines if shard_files else len(input_files)
      cycle_length = max(1, min(num_cpu_threads, n_files))

      d = d.interleave(
          tf.data.TFRecordDataset,
          cycle_length=cycle_length,
          num_parallel_calls=cycle_length,
          deterministic=seed is not None)
      if pipelines > 1 and not shard_files:
        d = d.shard(pipelines, pipeline_id)
      d = d.shuffle(buffer_size=100, seed=seed)
    else:
      d = tf.data.TFRecordDataset(input_files)
      if pipelines > 1:
        d = d.shard(pipelines, pipeline_id)
      d = d.repeat()  # Evaluation runs a fixed number of steps.

    # The original's eval comment says the remainder is kept; its code drops
    # it too.
    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=num_cpu_threads)
    d = d.batch(batch_size, drop_remainder=True)
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


def define_flags():
  """Defines the original flags of run_pretraining.py plus the shared ones."""
  if "input_file" in FLAGS and "max_predictions_per_seq" in FLAGS:
    return

  ## Required parameters
  flags.DEFINE_string(
      "bert_config_file", None,
      "The config json file corresponding to the pre-trained BERT model. "
      "This specifies the model architecture.")

  flags.DEFINE_string(
      "input_file", None,
      "Input TF example files (can be a glob or comma separated).")

  flags.DEFINE_string(
      "output_dir", None,
      "The output directory where the model checkpoints will be written.")

  ## Other parameters
  flags.DEFINE_string(
      "init_checkpoint", None,
      "Initial checkpoint (usually from a pre-trained BERT model).")

  flags.DEFINE_integer(
      "max_seq_length", 128,
      "The maximum total input sequence length after WordPiece tokenization. "
      "Sequences longer than this will be truncated, and sequences shorter "
      "than this will be padded. Must match data generation.")

  flags.DEFINE_integer(
      "max_predictions_per_seq", 20,
      "Maximum number of masked LM predictions per sequence. "
      "Must match data generation.")

  flags.DEFINE_bool("do_train", False, "Whether to run training.")

  flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

  flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")

  flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")

  flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")

  flags.DEFINE_integer("num_train_steps", 100000, "Number of training steps.")

  flags.DEFINE_integer("num_warmup_steps", 10000, "Number of warmup steps.")

  flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

  flags.DEFINE_string(
      "eval_input_file", None,
      "Input TF example files for --do_eval (glob or comma separated). "
      "Default: --input_file, as the original.")

  runner.define_runtime_flags()  # use_tpu ... save_checkpoints_steps, and new.


def expand_input_files(patterns, flag_name="input_file"):
  """Comma-separated globs -> list of files; error if nothing matches."""
  input_files = []
  for input_pattern in (patterns or "").split(","):
    input_pattern = input_pattern.strip()
    if input_pattern:
      input_files.extend(tf.io.gfile.glob(input_pattern))
  if not input_files:
    raise runner.UserError(
        "--%s=%s matches no file: pass TFRecord files written by "
        "create_pretraining_data.py (a path, a glob or a comma-separated list)."
        % (flag_name, patterns))
  return input_files


def check_input_files(input_files, max_seq_length, max_predictions_per_seq,
                      vocab_size, flag_name="input_file", sample_records=256):
  """Checks the first records of each file against the flags and the config
  (lengths, token ids < vocab_size); a `runner.UserError` names the fix."""
  runner.check_tfrecords(input_files, flag_name)
  for path in input_files:
    dataset = tf.data.TFRecordDataset(path).take(sample_records)
    try:
      records = list(dataset.as_numpy_iterator())
    except tf.errors.OpError as e:
      raise runner.UserError("--%s: cannot read %s as TFRecords: %s" %
                             (flag_name, path, e.message.splitlines()[0]))
    for index, record in enumerate(records):
      feats = tf.train.Example.FromString(record).features.feature
      missing = [n for n in FEATURE_NAMES if n not in feats]
      if missing:
        raise runner.UserError(
            "--%s: record %d of %s lacks the features %s: is it pretraining "
            "data from create_pretraining_data.py?" %
            (flag_name, index, path, ", ".join(missing)))
      for name, length_flag, want in (
          ("input_ids", "max_seq_length", max_seq_length),
          ("masked_lm_positions", "max_predictions_per_seq",
           max_predictions_per_seq)):
        got = len(feats[name].int64_list.value)
        if got != want:
          raise runner.UserError(
              "--%s: %s was written with %s=%d but --%s=%d: pass --%s=%d (or "
              "regenerate the data)." % (flag_name, path, length_flag, got,
                                         length_flag, want, length_flag, got))
      for name in ("input_ids", "masked_lm_ids"):
        values = feats[name].int64_list.value
        if values and max(values) >= vocab_size:
          raise runner.UserError(
              "--%s: %s holds token id %d in %s (record %d) but the "
              "bert_config vocab_size is %d: the data was made with another "
              "vocab.txt than the model's." %
              (flag_name, path, max(values), name, index, vocab_size))


def main(_):
  if not FLAGS.do_train and not FLAGS.do_eval:
    raise ValueError("At least one of `do_train` or `do_eval` must be True.")
  for name in ("bert_config_file", "input_file", "output_dir"):
    if not FLAGS[name].value:
      raise runner.UserError("--%s is required." % name)

  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  if FLAGS.do_train:
    runner.check_training_args(FLAGS.train_batch_size, FLAGS.learning_rate,
                               FLAGS.num_train_steps)

  runner.prepare_output_dir(FLAGS.output_dir)

  input_files = expand_input_files(FLAGS.input_file)
  logging.info("*** Input Files ***")
  for input_file in input_files:
    logging.info("  %s", input_file)
  check_input_files(input_files, FLAGS.max_seq_length,
                    FLAGS.max_predictions_per_seq, bert_config.vocab_size)

  cfg = runner.RunConfig.from_flags(FLAGS, output_dir=FLAGS.output_dir)
  task = PretrainingTask(bert_config, options=cfg.encoder_options)

  def make_input_fn(files, is_training):
    return input_fn_builder(files, FLAGS.max_seq_length,
                            FLAGS.max_predictions_per_seq, is_training,
                            seed=cfg.seed)

  if FLAGS.do_train:
    logging.info("***** Running training *****")
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    runner.train(cfg, task, make_input_fn(input_files, True),
                 num_train_steps=FLAGS.num_train_steps,
                 num_warmup_steps=FLAGS.num_warmup_steps,
                 learning_rate=FLAGS.learning_rate,
                 init_checkpoint=FLAGS.init_checkpoint,
                 train_batch_size=FLAGS.train_batch_size)

  if FLAGS.do_eval:
    eval_files = input_files
    if FLAGS.eval_input_file:
      eval_files = expand_input_files(FLAGS.eval_input_file, "eval_input_file")
      check_input_files(eval_files, FLAGS.max_seq_length,
                        FLAGS.max_predictions_per_seq, bert_config.vocab_size,
                        flag_name="eval_input_file")
    logging.info("***** Running evaluation *****")
    logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    result = runner.evaluate(cfg, task, make_input_fn(eval_files, False),
                             FLAGS.eval_batch_size, steps=FLAGS.max_eval_steps,
                             init_checkpoint=FLAGS.init_checkpoint)
    output_eval_file = os.path.join(FLAGS.output_dir, "eval_results.txt")
    runner.write_eval_results(output_eval_file, result)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(runner.main_wrapper(main))
