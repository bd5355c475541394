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
"""Exports an original-format BERT checkpoint as a TF2 TF-Hub encoder.

The SavedModel follows the layout of the TF2 BERT encoders on TF Hub:

  encoder = hub.KerasLayer(export_dir, trainable=True)   # or tf.saved_model.load
  outputs = encoder(dict(input_word_ids=ids, input_mask=mask,
                         input_type_ids=type_ids))
  outputs["pooled_output"]     # [batch, hidden]
  outputs["sequence_output"]   # [batch, seq, hidden]
  outputs["encoder_outputs"]   # list of num_hidden_layers [batch, seq, hidden]
  outputs["default"]           # = pooled_output

Attributes: `vocab_file` (an asset: the vocab.txt), `do_lower_case` (a bool
variable), `variables`, `trainable_variables`, `regularization_losses` (empty)
as the Reusable SavedModel convention asks, plus the `serving_default`
signature on int32 inputs. The weights keep their original names
(`bert/encoder/layer_0/...`) in `original_names` and in the variable names
(with "/" written as "__"), so fine-tuned weights can go back into an
original-format checkpoint.

Usage:
  python export_hub.py --bert_config_file=.../bert_config.json \
    --init_checkpoint=.../bert_model.ckpt --vocab_file=.../vocab.txt \
    --do_lower_case=true --export_dir=/tmp/bert_hub
"""

import collections

import common  # Before TensorFlow: keeps its C++ start-up lines quiet.
from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

import checkpoints
import modeling
import tokenization

FLAGS = flags.FLAGS


def define_flags():
  """Defines this script's flags."""
  flags.DEFINE_string("bert_config_file", None,
                      "The config json file of the pre-trained BERT model.")
  flags.DEFINE_string("init_checkpoint", None,
                      "The original-format checkpoint to export.")
  flags.DEFINE_string("vocab_file", None,
                      "The vocabulary file the model was trained on.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether the model expects lower-cased input.")
  flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")


def _input_spec(name):
  return tf.TensorSpec([None, None], tf.int32, name=name)


class HubBertEncoder(tf.__internal__.tracking.AutoTrackable):
  """A `modeling.BertModel` behind the TF-Hub BERT encoder interface."""

  def __init__(self, bert, bert_config, vocab_file, do_lower_case):
    super(HubBertEncoder, self).__init__()
    self._bert = bert
    # Reusable SavedModel attributes (hub.KerasLayer reads them).
    self.variables = list(bert.named_variables().values())
    self.trainable_variables = list(self.variables)
    self.regularization_losses = []
    self.vocab_file = tf.saved_model.Asset(vocab_file)
    self.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False,
                                     name="do_lower_case")
    # Metadata (variables, since SavedModel keeps no plain constants).
    self.original_names = tf.Variable(list(bert.named_variables()),
                                      trainable=False,
                                      name="original_names")
    self.hidden_size = tf.Variable(bert_config.hidden_size, trainable=False,
                                   name="hidden_size")
    self.bert_config_json = tf.Variable(bert_config.to_json_string(),
                                        trainable=False,
                                        name="bert_config_json")

  def _run(self, inputs, training):
    ids = tf.cast(inputs["input_word_ids"], tf.int32)
    mask = tf.cast(inputs["input_mask"], tf.int32)
    types = tf.cast(inputs["input_type_ids"], tf.int32)
    # _forward stores no symbolic output on the module (__call__ would).
    outputs = self._bert._forward(ids, mask, types, training)  # pylint: disable=protected-access
    return {
        "pooled_output": outputs.pooled_output,
        "sequence_output": outputs.sequence_output,
        "encoder_outputs": list(outputs.all_encoder_layers),
        "default": outputs.pooled_output,
    }

  @tf.function
  def __call__(self, inputs, training=False):
    # `training` is a Python bool (hub.KerasLayer passes one via smart_cond).
    return self._run(inputs, bool(training))

  @tf.function(input_signature=[
      _input_spec("input_word_ids"), _input_spec("input_mask"),
      _input_spec("input_type_ids")])
  def serving(self, input_word_ids, input_mask, input_type_ids):
    outputs = self._run(dict(input_word_ids=input_word_ids,
                             input_mask=input_mask,
                             input_type_ids=input_type_ids), False)
    result = {"pooled_output": outputs["pooled_output"],
              "sequence_output": outputs["sequence_output"]}
    for i, layer in enumerate(outputs["encoder_outputs"]):
      result["encoder_outputs_%d" % i] = layer
    return result


def export_bert_encoder(bert_config, init_checkpoint, vocab_file, do_lower_case,
                        export_dir):
  """Writes the TF-Hub-format encoder SavedModel; returns `export_dir`.

  `init_checkpoint` is an original-format checkpoint (prefix, file or
  directory); `vocab_file` is copied into the SavedModel's assets;
  `export_dir` is written under a temporary name, then renamed.
  """
  bert = modeling.BertModel(bert_config)
  checkpoints.init_from_checkpoint(bert.named_variables(), init_checkpoint)
  encoder = HubBertEncoder(bert, bert_config, vocab_file, do_lower_case)
  # Trace the training and inference variants of __call__ (dict inputs).
  spec = {k: _input_spec(k) for k in ("input_word_ids", "input_mask",
                                       "input_type_ids")}
  encoder.__call__.get_concrete_function(spec, training=False)
  encoder.__call__.get_concrete_function(spec, training=True)
  with common.atomic_path(export_dir) as tmp_dir:
    tf.saved_model.save(encoder, tmp_dir,
                        signatures={"serving_default": encoder.serving})
  logging.info("Exported the TF-Hub BERT encoder to %s", export_dir)
  return export_dir


def _load_hub_module(hub, handle):
  """`hub.load(handle)`; one line when the handle cannot be loaded."""
  remote = "://" in handle and not handle.startswith("gs://")
  if not remote and not tf.io.gfile.exists(handle):
    raise common.UserError(
        "--bert_hub_module_handle=%s does not exist: pass the directory of a "
        "TF2 SavedModel (e.g. one written by export_hub.py) or a tfhub.dev / "
        "kaggle.com model URL." % handle)
  try:
    return hub.load(handle)
  except Exception as e:  # pylint: disable=broad-except
    reason = common.one_line(getattr(e, "reason", None) or
                             getattr(e, "message", None) or e)
    if remote:
      raise common.UserError(
          "--bert_hub_module_handle=%s cannot be downloaded (%s): check the "
          "URL and the network, or download the model and pass its local "
          "directory." % (handle, reason)) from None
    raise common.UserError(
        "--bert_hub_module_handle=%s cannot be loaded as a TF2 SavedModel "
        "(%s)." % (handle, reason)) from None


_HubOutputs = collections.namedtuple("HubOutputs",
                                     ["pooled_output", "sequence_output"])


class HubEncoderForClassifier(tf.Module):
  """A TF-Hub BERT encoder used as `ClassifierModel`'s encoder.

  Accepts the modern TF2 Hub layout (dict inputs `input_word_ids`,
  `input_mask`, `input_type_ids` -> dict with `pooled_output`). Variables are
  named by `original_names` when the module has them (exports of this
  project), else by their variable names.
  """

  def __init__(self, handle, trainable=True):
    super(HubEncoderForClassifier, self).__init__(name="hub_encoder")
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    self.handle = handle
    self.module = _load_hub_module(hub, handle)
    if not hasattr(self.module, "trainable_variables"):
      raise common.UserError(
          "bert_hub_module_handle %s is not a TF2 SavedModel with "
          "trainable_variables (TF1 hub.Module format is not supported: "
          "export the checkpoint with export_hub.py)" % handle)
    variables = list(self.module.variables)
    if hasattr(self.module, "original_names"):
      names = [n.decode("utf-8") for n in self.module.original_names.numpy()]
      by_name = {v.name: v for v in variables}
      named = collections.OrderedDict()
      for name in names:
        key = name.replace("/", "__") + ":0"
        if key not in by_name:
          raise common.UserError("%s: variable %s listed in original_names "
                                 "is missing" % (handle, name))
        named[name] = by_name[key]
    else:
      named = collections.OrderedDict()
      for v in variables:
        name = v.name[:-2] if v.name.endswith(":0") else v.name
        base, i = name, 1
        while name in named:
          i += 1
          name = "%s_%d" % (base, i)
        named[name] = v
    trainable_ids = {id(v) for v in self.module.trainable_variables}
    self._named = collections.OrderedDict(
        (n, v) for n, v in named.items() if id(v) in trainable_ids or
        not trainable)
    self.trainable = trainable

  def named_variables(self):
    return collections.OrderedDict(self._named) if self.trainable else {}

  def __call__(self, input_ids, input_mask=None, token_type_ids=None,
               training=False):
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)
    outputs = self.module(dict(input_word_ids=tf.cast(input_ids, tf.int32),
                               input_mask=tf.cast(input_mask, tf.int32),
                               input_type_ids=tf.cast(token_type_ids,
                                                      tf.int32)),
                          training=training)
    return _HubOutputs(outputs["pooled_output"], outputs["sequence_output"])

  def hidden_size(self):
    if hasattr(self.module, "hidden_size"):
      return int(self.module.hidden_size.numpy())
    probe = self(tf.constant([[101, 102]]))
    return int(probe.pooled_output.shape[-1])

  def tokenization_info(self):
    """(vocab_file path, do_lower_case) stored in the module."""
    if not hasattr(self.module, "vocab_file"):
      raise common.UserError(
          "bert_hub_module_handle %s has no vocab_file asset" % self.handle)
    vocab = self.module.vocab_file.asset_path.numpy().decode("utf-8")
    do_lower_case = bool(self.module.do_lower_case.numpy())
    return vocab, do_lower_case


def main(_):
  logging.set_verbosity(logging.INFO)
  for name in ("bert_config_file", "init_checkpoint", "vocab_file",
               "export_dir"):
    if not getattr(FLAGS, name):
      raise common.UserError("--%s is required" % name)
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  modeling.check_vocab_size(FLAGS.vocab_file, bert_config)
  export_bert_encoder(bert_config, FLAGS.init_checkpoint, FLAGS.vocab_file,
                      FLAGS.do_lower_case, FLAGS.export_dir)


if __name__ == "__main__":
  define_flags()
  app.run(common.main_wrapper(main))
