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
the original one: `BertModel` plus the masked-LM head (`cls/predictions/...`,
decoder tied to the word embeddings) and the next-sentence head
(`cls/seq_relationship/...`). TPUEstimator is replaced by the shared TF2 loop
in `runner.py`; the per-step math (loss, gradients, clip by global norm 1.0,
original AdamWeightDecay update, global-step increment) is the runner's one
training step (`runner.build_trainer`).
"""

import collections
import os

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

import modeling
import optimization
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

  Variables (`named_variables()`, original creation order): the encoder's
  `bert/...`, then
    cls/predictions/transform/dense/kernel [H, H], .../bias [H]
    cls/predictions/transform/LayerNorm/beta [H], .../gamma [H]
    cls/predictions/output_bias [V]
    cls/seq_relationship/output_weights [2, H] (used transposed)
    cls/seq_relationship/output_bias [2]
  Kernels and `output_weights` use the truncated normal with the config's
  `initializer_range`; biases and beta are zeros, gamma ones. There is no
  separate decoder matrix: the MLM logits use `bert/embeddings/word_embeddings`
  transposed.
  """

  def __init__(self, bert_config, is_training=False, options=None):
    super(PretrainingModel, self).__init__(name="pretraining")
    self.config = bert_config
    self.is_training = bool(is_training)
    self.bert = modeling.BertModel(config=bert_config, is_training=is_training,
                                   options=options)
    width = bert_config.hidden_size
    init = modeling.create_initializer(bert_config.initializer_range)
    # cls/predictions: transform (dense + LayerNorm), then the output bias.
    self.transform = modeling.Dense(
        "cls/predictions/transform/dense", width, width,
        activation=bert_config.hidden_act, kernel_initializer=init)
    self.transform_layer_norm = modeling.LayerNorm(
        "cls/predictions/transform/LayerNorm", width)
    self.output_bias = modeling.create_variable(
        "cls/predictions/output_bias", [bert_config.vocab_size],
        modeling.zeros_initializer)
    # cls/seq_relationship: a 2-way classifier on the pooled output.
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

  # Plain Python control flow only (on static shapes and flags): no need for
  # autograph, which would only slow down tracing of the training loop.
  @tf.autograph.experimental.do_not_convert
  def __call__(self, features, training=False):
    """Runs encoder and both heads on a feature dict; returns PretrainingOutputs."""
    outputs = self.bert(
        features["input_ids"],
        input_mask=features["input_mask"],
        token_type_ids=features["segment_ids"],
        training=training)
    (masked_lm_loss, masked_lm_example_loss,
     masked_lm_log_probs) = get_masked_lm_output(
         self.config, outputs.sequence_output, self.bert.get_embedding_table(),
         features["masked_lm_positions"], features["masked_lm_ids"],
         features["masked_lm_weights"], model=self)
    (next_sentence_loss, next_sentence_example_loss,
     next_sentence_log_probs) = get_next_sentence_output(
         self.config, outputs.pooled_output, features["next_sentence_labels"],
         model=self)
    total_loss = masked_lm_loss + next_sentence_loss
    return PretrainingOutputs(
        masked_lm_loss=masked_lm_loss,
        masked_lm_example_loss=masked_lm_example_loss,
        masked_lm_log_probs=masked_lm_log_probs,
        next_sentence_loss=next_sentence_loss,
        next_sentence_example_loss=next_sentence_example_loss,
        next_sentence_log_probs=next_sentence_log_probs,
        total_loss=total_loss)


def get_masked_lm_output(bert_config, input_tensor, output_weights, positions,
                         label_ids, label_weights, model):
  """Get loss and log probs for the masked LM.

  Args:
    bert_config: `BertConfig` (its vocab_size sets the output width).
    input_tensor: float [batch, seq, hidden] sequence output.
    output_weights: the word-embedding table [vocab, hidden] (tied decoder).
    positions: int [batch, max_predictions] positions to predict.
    label_ids: int [batch, max_predictions] original token ids.
    label_weights: float [batch, max_predictions], 1.0 real / 0.0 padding.
    model: the `PretrainingModel` owning the `cls/predictions` variables.

  Returns:
    (loss, per_example_loss [batch*max_predictions],
     log_probs [batch*max_predictions, vocab]).
  """
  logits = masked_lm_logits(model, input_tensor, output_weights, positions)
  log_probs = tf.nn.log_softmax(logits, axis=-1)

  label_ids = tf.reshape(label_ids, [-1])
  label_weights = tf.reshape(tf.cast(label_weights, tf.float32), [-1])
  one_hot_labels = tf.one_hot(label_ids, depth=bert_config.vocab_size,
                              dtype=tf.float32)

  # The `positions` tensor might be zero-padded (if the sequence is too short
  # to have the maximum number of predictions). The `label_weights` tensor has
  # a value of 1.0 for every real prediction and 0.0 for the padding.
  per_example_loss = -tf.reduce_sum(log_probs * one_hot_labels, axis=[-1])
  numerator = tf.reduce_sum(label_weights * per_example_loss)
  denominator = tf.reduce_sum(label_weights) + 1e-5
  loss = numerator / denominator
  return (loss, per_example_loss, log_probs)


def masked_lm_logits(model, input_tensor, output_weights, positions):
  """The masked-LM head: float32 logits [batch*n, vocab] at `positions`.

  `input_tensor` is the sequence output [batch, seq, hidden], `positions` int
  [batch, n], `output_weights` the word-embedding table (the tied decoder) and
  `model` the `PretrainingModel` owning the `cls/predictions` variables. Also
  used for inference by run_fill_mask.py.
  """
  compute_dtype = model.bert.compute_dtype
  # We apply one more non-linear transformation before the output layer, only
  # at the masked positions.
  input_tensor = gather_indexes(input_tensor, positions)
  input_tensor = model.transform(_cast(input_tensor, compute_dtype))
  input_tensor = model.transform_layer_norm(input_tensor)

  # The output weights are the same as the input embeddings, but there is an
  # output-only bias for each token.
  logits = tf.matmul(_cast(input_tensor, compute_dtype),
                     _cast(output_weights, compute_dtype), transpose_b=True)
  return tf.nn.bias_add(_cast(logits, tf.float32), model.output_bias)


def get_next_sentence_output(bert_config, input_tensor, labels, model):
  """Get loss and log probs for the next sentence prediction.

  Simple binary classification. Note that 0 is "next sentence" and 1 is
  "random sentence". This weight matrix is not used after pre-training.

  Returns:
    (loss, per_example_loss [batch], log_probs [batch, 2]).
  """
  del bert_config
  input_tensor = tf.cast(input_tensor, tf.float32)
  logits = tf.matmul(input_tensor, model.seq_relationship_weights,
                     transpose_b=True)
  logits = tf.nn.bias_add(logits, model.seq_relationship_bias)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  labels = tf.reshape(labels, [-1])
  one_hot_labels = tf.one_hot(labels, depth=2, dtype=tf.float32)
  per_example_loss = -tf.reduce_sum(one_hot_labels * log_probs, axis=-1)
  loss = tf.reduce_mean(per_example_loss)
  return (loss, per_example_loss, log_probs)


def gather_indexes(sequence_tensor, positions):
  """Gathers the vectors at the specific positions over a minibatch.

  [batch, seq, width] and [batch, n] -> [batch * n, width]; each example's
  positions are offset by `b * seq` into the flattened sequence.
  """
  sequence_shape = modeling.get_shape_list(sequence_tensor, expected_rank=3)
  batch_size = sequence_shape[0]
  seq_length = sequence_shape[1]
  width = sequence_shape[2]

  positions = tf.cast(positions, tf.int32)
  flat_offsets = tf.reshape(
      tf.range(0, batch_size, dtype=tf.int32) * seq_length, [-1, 1])
  flat_positions = tf.reshape(positions + flat_offsets, [-1])
  flat_sequence_tensor = tf.reshape(sequence_tensor,
                                    [batch_size * seq_length, width])
  output_tensor = tf.gather(flat_sequence_tensor, flat_positions)
  return output_tensor


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
    self.options = options   # modeling.EncoderOptions of the encoder

  def create_model(self):
    return PretrainingModel(self.bert_config, options=self.options)

  def compute_loss(self, model, features, training):
    """(total_loss, {"masked_lm_loss", "next_sentence_loss"})."""
    out = model(features, training=training)
    return out.total_loss, {
        "masked_lm_loss": out.masked_lm_loss,
        "next_sentence_loss": out.next_sentence_loss,
    }

  def eval_metrics(self, model, features):
    """The original metric_fn as (numerator, denominator) streaming sums.

    masked_lm_accuracy / masked_lm_loss: weighted by masked_lm_weights;
    next_sentence_accuracy / next_sentence_loss: unweighted over examples;
    loss: the mean of the total loss over eval batches (Estimator's `loss`).
    """
    out = model(features, training=False)
    masked_lm_predictions = tf.argmax(out.masked_lm_log_probs, axis=-1,
                                      output_type=tf.int32)
    masked_lm_ids = tf.reshape(tf.cast(features["masked_lm_ids"], tf.int32), [-1])
    masked_lm_weights = tf.reshape(
        tf.cast(features["masked_lm_weights"], tf.float32), [-1])
    masked_lm_correct = tf.cast(
        tf.equal(masked_lm_predictions, masked_lm_ids), tf.float32)
    weight_sum = tf.reduce_sum(masked_lm_weights)

    next_sentence_predictions = tf.argmax(out.next_sentence_log_probs, axis=-1,
                                          output_type=tf.int32)
    next_sentence_labels = tf.reshape(
        tf.cast(features["next_sentence_labels"], tf.int32), [-1])
    next_sentence_correct = tf.cast(
        tf.equal(next_sentence_predictions, next_sentence_labels), tf.float32)
    count = tf.cast(tf.size(next_sentence_labels), tf.float32)
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


# ----------------------------------------------------------------------------
# Input pipeline.
# ----------------------------------------------------------------------------


def _name_to_features(max_seq_length, max_predictions_per_seq):
  return {
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


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training, num_cpu_threads=4, seed=None):
  """Creates an `input_fn` closure to be passed to the runner.

  The original pipeline: training reads the file names in a repeated, shuffled
  order, interleaves `min(num_cpu_threads, len(files))` TFRecord files in
  parallel (non-deterministic order), shuffles with a buffer of 100 and batches
  with `drop_remainder=True`. Evaluation reads the files in order, repeats,
  and also drops the remainder. Every int64 feature becomes int32.

  Args:
    input_files: list of TFRecord paths (local or gs://).
    max_seq_length, max_predictions_per_seq: the lengths the data was written
      with.
    is_training: training or evaluation pipeline.
    num_cpu_threads: interleave cycle length and parallel map calls.
    seed: new. When given, both shuffles are seeded and the interleave is
      deterministic, so the record order is reproducible.

  Returns:
    `input_fn(params)`; `params["batch_size"]` is the per-replica batch and
    `params.get("input_context")` an optional `tf.distribute.InputContext`.
  """
  input_files = list(input_files)
  name_to_features = _name_to_features(max_seq_length, max_predictions_per_seq)
  deterministic = seed is not None

  def input_fn(params):
    """The actual input function."""
    batch_size = params["batch_size"]
    ctx = params.get("input_context")
    pipelines = ctx.num_input_pipelines if ctx is not None else 1
    pipeline_id = ctx.input_pipeline_id if ctx is not None else 0
    shard_files = pipelines > 1 and len(input_files) >= pipelines

    # For training, we want a lot of parallel reading and shuffling.
    # For eval, we want no shuffling and parallel reading doesn't matter.
    if is_training:
      d = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
      if shard_files:
        d = d.shard(pipelines, pipeline_id)
      d = d.repeat()
      d = d.shuffle(buffer_size=len(input_files), seed=seed)

      # `cycle_length` is the number of parallel files that get read.
      n_files = len(input_files) // pipelines if shard_files else len(input_files)
      cycle_length = max(1, min(num_cpu_threads, n_files))

      # `sloppy` (non-deterministic) interleave, as the original: the order
      # is only reproducible when a seed is given.
      d = d.interleave(
          tf.data.TFRecordDataset,
          cycle_length=cycle_length,
          num_parallel_calls=cycle_length,
          deterministic=deterministic)
      if pipelines > 1 and not shard_files:
        d = d.shard(pipelines, pipeline_id)
      d = d.shuffle(buffer_size=100, seed=seed)
    else:
      d = tf.data.TFRecordDataset(input_files)
      if pipelines > 1:
        d = d.shard(pipelines, pipeline_id)
      # Since we evaluate for a fixed number of steps we don't want to
      # encounter out-of-range exceptions.
      d = d.repeat()

    # We must `drop_remainder` on training because the TPU requires fixed
    # size dimensions. (The original's eval comment says the remainder is
    # kept, but its code drops it too.)
    d = d.map(lambda record: runner.decode_record(record, name_to_features),
              num_parallel_calls=num_cpu_threads)
    d = d.batch(batch_size, drop_remainder=True)
    return d.prefetch(tf.data.AUTOTUNE)

  return input_fn


# ----------------------------------------------------------------------------
# Script: flags and main.
# ----------------------------------------------------------------------------


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

  # New: evaluate on other files than the training data (the original
  # evaluates on --input_file, #272).
  flags.DEFINE_string(
      "eval_input_file", None,
      "Input TF example files for --do_eval (glob or comma separated). "
      "Default: --input_file, as the original.")

  # use_tpu, tpu_name, tpu_zone, gcp_project, master, num_tpu_cores,
  # iterations_per_loop, save_checkpoints_steps and the new runtime flags.
  runner.define_runtime_flags()


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
  """Checks the first records of each file against the flags and the config.

  Raises a one-line `runner.UserError` when the files hold no record or are
  truncated (`runner.check_tfrecords`), when the record lengths differ from
  --max_seq_length/--max_predictions_per_seq (naming both values) or a token id
  is >= vocab_size.
  """
  runner.check_tfrecords(input_files, flag_name)
  for path in input_files:
    dataset = tf.data.TFRecordDataset(path).take(sample_records)
    try:
      records = list(dataset.as_numpy_iterator())
    except tf.errors.OpError as e:
      raise runner.UserError("--%s: cannot read %s as TFRecords: %s" %
                             (flag_name, path, e.message.splitlines()[0]))
    for index, record in enumerate(records):
      example = tf.train.Example.FromString(record)
      feats = example.features.feature
      missing = [n for n in FEATURE_NAMES if n not in feats]
      if missing:
        raise runner.UserError(
            "--%s: record %d of %s lacks the features %s: is it pretraining "
            "data from create_pretraining_data.py?" %
            (flag_name, index, path, ", ".join(missing)))
      seq = len(feats["input_ids"].int64_list.value)
      if seq != max_seq_length:
        raise runner.UserError(
            "--%s: %s was written with max_seq_length=%d but "
            "--max_seq_length=%d: pass --max_seq_length=%d (or regenerate the "
            "data)." % (flag_name, path, seq, max_seq_length, seq))
      preds = len(feats["masked_lm_positions"].int64_list.value)
      if preds != max_predictions_per_seq:
        raise runner.UserError(
            "--%s: %s was written with max_predictions_per_seq=%d but "
            "--max_predictions_per_seq=%d: pass --max_predictions_per_seq=%d "
            "(or regenerate the data)." %
            (flag_name, path, preds, max_predictions_per_seq, preds))
      for name in ("input_ids", "masked_lm_ids"):
        values = feats[name].int64_list.value
        if values and max(values) >= vocab_size:
          raise runner.UserError(
              "--%s: %s holds token id %d in %s (record %d) but the "
              "bert_config vocab_size is %d: the data was made with another "
              "vocab.txt than the model's." %
              (flag_name, path, max(values), name, index, vocab_size))


def main(_):
  logging.set_verbosity(logging.INFO)

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

  if FLAGS.do_train:
    logging.info("***** Running training *****")
    logging.info("  Batch size = %d", FLAGS.train_batch_size)
    train_input_fn = input_fn_builder(
        input_files=input_files,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        is_training=True,
        seed=cfg.seed)
    runner.train(cfg, task, train_input_fn,
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

    eval_input_fn = input_fn_builder(
        input_files=eval_files,
        max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq,
        is_training=False,
        seed=cfg.seed)

    result = runner.evaluate(cfg, task, eval_input_fn, FLAGS.eval_batch_size,
                             steps=FLAGS.max_eval_steps,
                             init_checkpoint=FLAGS.init_checkpoint)

    output_eval_file = os.path.join(FLAGS.output_dir, "eval_results.txt")
    runner.write_eval_results(output_eval_file, result)


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  app.run(runner.main_wrapper(main))
