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
"""Converts BERT checkpoints between the original format and Hugging Face's.

    python convert_checkpoint.py --input=PATH --output=DIR

The direction follows from `--input`:

  * an original-format checkpoint (a prefix such as `.../bert_model.ckpt` or
    `.../model.ckpt-N`, one of its files, or its directory) becomes a Hugging
    Face directory: `config.json`, `model.safetensors`, `vocab.txt`,
    `tokenizer_config.json`;
  * a Hugging Face directory (`config.json` + `model.safetensors`, sharded
    safetensors, or `pytorch_model.bin` when torch is installed) becomes an
    original-format directory: `bert_model.ckpt.{index,data-00000-of-00001}`
    with the original variable names, `bert_config.json`, `vocab.txt` (and a
    `tokenizer_config.json` that carries `do_lower_case` back).

Heads travel both ways and choose the Hugging Face class:

  cls/predictions + cls/seq_relationship  <->  BertForPreTraining
  cls/predictions                         <->  BertForMaskedLM
  cls/seq_relationship                    <->  BertForNextSentencePrediction
  output_weights / output_bias            <->  BertForSequenceClassification
  cls/squad/output_{weights,bias}         <->  BertForQuestionAnswering
  (no head)                               <->  BertModel

Adam slots and `global_step` are training state and are dropped (and said so);
anything else that maps nowhere is listed. The original's "gelu" is the tanh
approximation, Hugging Face's "gelu" the exact erf form: the original "gelu"
becomes "gelu_new" in `config.json`, and Hugging Face's "gelu" becomes
"gelu_exact" in `bert_config.json`, so the numbers stay the same both ways.

`--keep_layers=0,2,4` keeps those encoder layers, renumbered 0, 1, 2 (e.g. to
start a distillation student); `--output_format` also allows original ->
original and hf -> hf for that.
"""

import collections
import json
import os
import re

from absl import app
from absl import flags
from absl import logging
import numpy as np

import common

FLAGS = flags.FLAGS

# ------------------------------------------------------------------------------------
# The names: original <-> Hugging Face.
# ------------------------------------------------------------------------------------

ORIGINAL = "original"
HF = "hf"

# Original-format checkpoint files and Hugging Face directory files.
ORIGINAL_PREFIX = "bert_model.ckpt"
BERT_CONFIG = "bert_config.json"
VOCAB = "vocab.txt"
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_SHARD_INDEX = "model.safetensors.index.json"
HF_TORCH_WEIGHTS = "pytorch_model.bin"
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZER_JSON = "tokenizer.json"


def _define(define, name, default, help_text):
  """Defines a flag unless another script imported in this process did."""
  if name not in FLAGS:
    define(name, default, help_text)


def define_flags():
  """Defines the flags of this script (idempotent)."""
  _define(flags.DEFINE_string, "input", None,
          "The checkpoint to convert: an original-format checkpoint (prefix, "
          "one of its files, or its directory) or a Hugging Face model "
          "directory.")
  _define(flags.DEFINE_string, "output", None,
          "The directory to write the converted model to (created; refused "
          "when it already holds a different model, unless --overwrite).")
  _define(flags.DEFINE_string, "bert_config_file", None,
          "The config json file of an original-format input. Default: the "
          "bert_config.json beside the checkpoint.")
  _define(flags.DEFINE_string, "vocab_file", None,
          "The vocabulary file of the input. Default: the vocab.txt beside "
          "the checkpoint (or, for a Hugging Face directory without one, the "
          "WordPiece vocabulary inside its tokenizer.json).")
  _define(flags.DEFINE_bool, "do_lower_case", True,
          "Whether the model lower-cases its input. Default: do_lower_case of "
          "the tokenizer_config.json beside the input when there is one, else "
          "True. Checked against the names of the released models, as the "
          "original does.")
  _define(flags.DEFINE_string, "task_name", None,
          "For a classifier checkpoint: the run_classifier.py task it was "
          "fine-tuned on, to write its labels as id2label/label2id in "
          "config.json.")
  _define(lambda name, default, help_text: flags.DEFINE_enum(
      name, default, [HF, ORIGINAL], help_text), "output_format", None,
          "The format to write: hf or original. Default: the other one than "
          "the input's.")
  _define(flags.DEFINE_list, "keep_layers", None,
          "Encoder layers to keep (e.g. 0,2,4), renumbered from 0 in that "
          "order; the tensors are copied bitwise. Default: all layers.")
  _define(flags.DEFINE_bool, "overwrite", False,
          "Replace --output even when it holds a different model.")


class Options(collections.namedtuple("Options", [
    "bert_config_file", "vocab_file", "do_lower_case", "task_name",
    "output_format", "keep_layers", "overwrite"])):
  """What the flags say beyond --input/--output; do_lower_case None = not given.
  """

  def __new__(cls, bert_config_file=None, vocab_file=None, do_lower_case=None,
              task_name=None, output_format=None, keep_layers=None,
              overwrite=False):
    return super(Options, cls).__new__(
        cls, bert_config_file, vocab_file, do_lower_case, task_name,
        output_format, keep_layers, overwrite)


# Encoder layer parts: (original scope, Hugging Face module, is a LayerNorm).
_LAYER_PARTS = (
    ("attention/self/query", "attention.self.query", False),
    ("attention/self/key", "attention.self.key", False),
    ("attention/self/value", "attention.self.value", False),
    ("attention/output/dense", "attention.output.dense", False),
    ("attention/output/LayerNorm", "attention.output.LayerNorm", True),
    ("intermediate/dense", "intermediate.dense", False),
    ("output/dense", "output.dense", False),
    ("output/LayerNorm", "output.LayerNorm", True),
)

# The heads: name -> {original name: (Hugging Face name, transpose)}.
_HEAD_TENSORS = {
    "mlm": {
        "cls/predictions/transform/dense/kernel":
            ("cls.predictions.transform.dense.weight", True),
        "cls/predictions/transform/dense/bias":
            ("cls.predictions.transform.dense.bias", False),
        "cls/predictions/transform/LayerNorm/gamma":
            ("cls.predictions.transform.LayerNorm.weight", False),
        "cls/predictions/transform/LayerNorm/beta":
            ("cls.predictions.transform.LayerNorm.bias", False),
        "cls/predictions/output_bias": ("cls.predictions.bias", False),
    },
    # The original keeps these [num_outputs, hidden], as torch's Linear does.
    "nsp": {
        "cls/seq_relationship/output_weights":
            ("cls.seq_relationship.weight", False),
        "cls/seq_relationship/output_bias":
            ("cls.seq_relationship.bias", False),
    },
    "classifier": {
        "output_weights": ("classifier.weight", False),
        "output_bias": ("classifier.bias", False),
    },
    "squad": {
        "cls/squad/output_weights": ("qa_outputs.weight", False),
        "cls/squad/output_bias": ("qa_outputs.bias", False),
    },
}

# Which Hugging Face class a set of heads becomes, most specific first; the
# flag says whether that class has the pooler.
ARCHITECTURES = (
    (("classifier",), "BertForSequenceClassification", True),
    (("squad",), "BertForQuestionAnswering", False),
    (("mlm", "nsp"), "BertForPreTraining", True),
    (("mlm",), "BertForMaskedLM", False),
    (("nsp",), "BertForNextSentencePrediction", True),
    ((), "BertModel", True),
)

# bert_config.json keys every conversion needs (the others have defaults).
_REQUIRED_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers",
                         "num_attention_heads", "intermediate_size",
                         "max_position_embeddings", "type_vocab_size",
                         "hidden_act")
_CONFIG_DEFAULTS = {"hidden_dropout_prob": 0.1,
                    "attention_probs_dropout_prob": 0.1,
                    "initializer_range": 0.02}

# Keys of the released Chinese / multilingual bert_config.json files beyond the
# model's: written to config.json unchanged and read back.
_EXTRA_ORIGINAL_KEYS = ("directionality", "pooler_fc_size",
                        "pooler_num_attention_heads", "pooler_num_fc_layers",
                        "pooler_size_per_head", "pooler_type")

# Activations: ours -> Hugging Face's (same numbers), and back.
_ACT_TO_HF = {"gelu": "gelu_new", "gelu_exact": "gelu", "relu": "relu",
              "tanh": "tanh"}
_ACT_FROM_HF = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu",
                "gelu_fast": None, "gelu": "gelu_exact", "relu": "relu",
                "tanh": "tanh"}


def _dense_or_layer_norm(original_scope, hf_module, layer_norm):
  """{original name: (HF name, transpose)} of one Dense or LayerNorm."""
  if layer_norm:
    return {original_scope + "/gamma": (hf_module + ".weight", False),
            original_scope + "/beta": (hf_module + ".bias", False)}
  return {original_scope + "/kernel": (hf_module + ".weight", True),
          original_scope + "/bias": (hf_module + ".bias", False)}


def encoder_names(num_layers, with_pooler=True, hf_prefix="bert."):
  """{original name: (HF name, transpose)} of the encoder's tensors."""
  names = {}
  for table in ("word", "position", "token_type"):
    names["bert/embeddings/%s_embeddings" % table] = (
        hf_prefix + "embeddings.%s_embeddings.weight" % table, False)
  names.update(_dense_or_layer_norm("bert/embeddings/LayerNorm",
                                    hf_prefix + "embeddings.LayerNorm", True))
  for i in range(num_layers):
    for original_part, hf_part, layer_norm in _LAYER_PARTS:
      names.update(_dense_or_layer_norm(
          "bert/encoder/layer_%d/%s" % (i, original_part),
          hf_prefix + "encoder.layer.%d.%s" % (i, hf_part), layer_norm))
  if with_pooler:
    names.update(_dense_or_layer_norm("bert/pooler/dense",
                                      hf_prefix + "pooler.dense", False))
  return names


def is_training_state(name):
  return (name == "global_step" or name.endswith("/adam_m") or
          name.endswith("/adam_v"))


def heads_of(names):
  """The heads (keys of _HEAD_TENSORS) with at least one tensor in `names`."""
  return [head for head, tensors in _HEAD_TENSORS.items()
          if any(n in names for n in tensors)]


def architecture_for(heads):
  """(HF class, the heads it carries, has pooler) for the heads present."""
  for wanted, name, pooler in ARCHITECTURES:
    if all(h in heads for h in wanted):
      return name, list(wanted), pooler
  raise AssertionError(heads)


# ------------------------------------------------------------------------------------
# The config: bert_config.json <-> config.json.
# ------------------------------------------------------------------------------------


def read_json(path, what):
  try:
    with common.open_file(path) as f:
      value = json.load(f)
  except ValueError as e:
    raise common.UserError("%s %s is not valid JSON: %s" % (what, path, e))
  if not isinstance(value, dict):
    raise common.UserError("%s %s holds no JSON object" % (what, path))
  return value


def check_config(config, path, required=_REQUIRED_CONFIG_KEYS):
  missing = [k for k in required if k not in config]
  if missing:
    raise common.UserError(
        "%s lacks the key%s %s: a BERT config needs %s" %
        (path, "s" if len(missing) > 1 else "", ", ".join(missing),
         ", ".join(required)))


def config_from_hf(hf_config, path):
  """Our bert_config.json dict from a Hugging Face config.json dict."""
  model_type = hf_config.get("model_type", "bert")
  if model_type != "bert":
    raise common.UserError(
        "%s is a %r model (model_type); only BERT (model_type bert) converts "
        "to the original format" % (path, model_type))
  check_config(hf_config, path, _REQUIRED_CONFIG_KEYS[:-2])
  act = hf_config.get("hidden_act", "gelu")  # Hugging Face's default.
  if _ACT_FROM_HF.get(act) is None:
    raise common.UserError(
        "%s: hidden_act %r has no equivalent in the original BERT code "
        "(supported: %s)" % (path, act, ", ".join(sorted(
            k for k, v in _ACT_FROM_HF.items() if v))))
  eps = hf_config.get("layer_norm_eps", 1e-12)
  if abs(eps - 1e-12) > 1e-15:
    raise common.UserError(
        "%s: layer_norm_eps is %g; the original BERT code uses 1e-12 and the "
        "numbers would change" % (path, eps))
  position = hf_config.get("position_embedding_type", "absolute")
  if position != "absolute":
    raise common.UserError(
        "%s: position_embedding_type %r; the original BERT code has absolute "
        "position embeddings only" % (path, position))
  config = {
      "attention_probs_dropout_prob": hf_config.get(
          "attention_probs_dropout_prob", 0.1),
      "hidden_act": _ACT_FROM_HF[act],
      "hidden_dropout_prob": hf_config.get("hidden_dropout_prob", 0.1),
      "hidden_size": hf_config["hidden_size"],
      "initializer_range": hf_config.get("initializer_range", 0.02),
      "intermediate_size": hf_config["intermediate_size"],
      "max_position_embeddings": hf_config["max_position_embeddings"],
      "num_attention_heads": hf_config["num_attention_heads"],
      "num_hidden_layers": hf_config["num_hidden_layers"],
      "type_vocab_size": hf_config.get("type_vocab_size", 2),
      "vocab_size": hf_config["vocab_size"],
  }
  for key in _EXTRA_ORIGINAL_KEYS:
    if key in hf_config:
      config[key] = hf_config[key]
  return config


def config_to_hf(config, architecture, label_names=None, num_labels=None):
  """A Hugging Face config.json dict from our bert_config.json dict."""
  act = config["hidden_act"]
  if act not in _ACT_TO_HF:
    raise common.UserError(
        "hidden_act %r of the bert_config.json has no Hugging Face equivalent "
        "(supported: %s)" % (act, ", ".join(sorted(_ACT_TO_HF))))
  hf = {"architectures": [architecture], "model_type": "bert"}
  for key in ("vocab_size", "hidden_size", "num_hidden_layers",
              "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size"):
    hf[key] = config[key]
  for key, default in _CONFIG_DEFAULTS.items():
    hf[key] = config.get(key, default)
  hf["hidden_act"] = _ACT_TO_HF[act]
  hf["layer_norm_eps"] = 1e-12
  hf["pad_token_id"] = 0
  hf["position_embedding_type"] = "absolute"
  hf["tie_word_embeddings"] = True
  # Keys the original configs carry beyond the model's (the Chinese and
  # multilingual models' pooler_*, directionality) travel unchanged.
  for key, value in config.items():
    if key not in hf and key not in ("hidden_act",):
      hf[key] = value
  if num_labels is not None:
    if label_names is None:
      label_names = ["LABEL_%d" % i for i in range(num_labels)]
    hf["id2label"] = {str(i): str(n) for i, n in enumerate(label_names)}
    hf["label2id"] = {str(n): i for i, n in enumerate(label_names)}
    if num_labels == 1:
      hf["problem_type"] = "regression"
  return hf


def expected_shape(name, config):
  """The shape bert_config.json implies for an original name (None: any)."""
  h = config["hidden_size"]
  i = config["intermediate_size"]
  shapes = {
      "bert/embeddings/word_embeddings": [config["vocab_size"], h],
      "bert/embeddings/position_embeddings": [
          config["max_position_embeddings"], h],
      "bert/embeddings/token_type_embeddings": [config["type_vocab_size"], h],
      "cls/predictions/output_bias": [config["vocab_size"]],
      "cls/seq_relationship/output_weights": [2, h],
      "cls/seq_relationship/output_bias": [2],
      "cls/squad/output_weights": [2, h],
      "cls/squad/output_bias": [2],
      "output_weights": [None, h],
      "output_bias": [None],
  }
  if name in shapes:
    return shapes[name]
  if name.endswith("/gamma") or name.endswith("/beta"):
    return [h]
  if name.endswith("intermediate/dense/kernel"):
    return [h, i]
  if name.endswith("intermediate/dense/bias"):
    return [i]
  if re.search(r"layer_\d+/output/dense/kernel$", name):
    return [i, h]
  if name.endswith("/kernel"):
    return [h, h]
  if name.endswith("/bias"):
    return [h]
  return None


def check_shapes(tensors, config, config_path, shown_names=None):
  """Every tensor has the shape the config implies; names both on mismatch."""
  # Matrices first: their two shapes say the most.
  for name in sorted(tensors, key=lambda n: (-tensors[n].ndim, n)):
    value = tensors[name]
    want = expected_shape(name, config)
    if want is None:
      continue
    got = list(value.shape)
    if len(got) != len(want) or any(w is not None and w != g
                                    for w, g in zip(want, got)):
      shown, shown_got, shown_want = name, got, want
      if shown_names and name in shown_names:
        shown, transpose = shown_names[name]
        if transpose:
          shown_got, shown_want = got[::-1], want[::-1]
      raise common.UserError(
          "tensor %s has shape %s but %s implies %s (hidden_size=%d, "
          "intermediate_size=%d, vocab_size=%d): the config does not belong "
          "to these weights" %
          (shown, shown_got, config_path,
           str(shown_want).replace("None", "any"), config["hidden_size"],
           config["intermediate_size"], config["vocab_size"]))
  if "output_weights" in tensors and "output_bias" in tensors:
    if tensors["output_weights"].shape[0] != tensors["output_bias"].shape[0]:
      raise common.UserError(
          "the classifier head's output_weights %s and output_bias %s disagree "
          "on the number of labels" % (list(tensors["output_weights"].shape),
                                       list(tensors["output_bias"].shape)))


# ------------------------------------------------------------------------------------
# A model in memory: original names -> numpy arrays, plus what came with it.
# ------------------------------------------------------------------------------------


class Model(object):
  """The converted model, always held under the original names.

  Attributes:
    tensors: original name -> numpy array (float32 unless the input was not).
    config: the bert_config.json dict.
    vocab_lines: the vocabulary file's lines (bytes, unchanged), or None.
    do_lower_case: bool.
    label_names: the classifier's label names, or None.
    notes: lines saying what was dropped or not mapped.
  """

  def __init__(self, tensors, config, vocab_lines, do_lower_case,
               label_names=None, notes=None):
    self.tensors = tensors
    self.config = config
    self.vocab_lines = vocab_lines
    self.do_lower_case = do_lower_case
    self.label_names = label_names
    self.notes = list(notes or [])


def select_layers(model, keep_layers):
  """Keeps the given encoder layers, renumbered from 0 (tensors unchanged)."""
  num_layers = model.config["num_hidden_layers"]
  try:
    keep = [int(x) for x in keep_layers]
  except ValueError:
    raise common.UserError("--keep_layers=%s: expected layer numbers such as "
                           "0,2,4" % ",".join(keep_layers))
  bad = [k for k in keep if not 0 <= k < num_layers]
  if bad or not keep or len(set(keep)) != len(keep):
    raise common.UserError(
        "--keep_layers=%s: expected distinct layer numbers in 0..%d (the "
        "model has %d layers)" % (",".join(keep_layers), num_layers - 1,
                                  num_layers))
  renumber = {old: new for new, old in enumerate(keep)}
  tensors = {}
  for name, value in model.tensors.items():
    m = re.match(r"^bert/encoder/layer_(\d+)/(.*)$", name)
    if m is None:
      tensors[name] = value
    elif int(m.group(1)) in renumber:
      tensors["bert/encoder/layer_%d/%s" % (renumber[int(m.group(1))],
                                            m.group(2))] = value
  model.tensors = tensors
  model.config = dict(model.config, num_hidden_layers=len(keep))
  model.notes.append("kept encoder layers %s as layers 0..%d" %
                     (",".join(str(k) for k in keep), len(keep) - 1))


def _split_known(tensors, num_layers):
  """(model tensors, training-state names, unmapped names) of a checkpoint."""
  known = set(encoder_names(num_layers))
  for head_tensors in _HEAD_TENSORS.values():
    known.update(head_tensors)
  model, state, unmapped = {}, [], []
  for name in sorted(tensors):
    if is_training_state(name):
      state.append(name)
    elif name in known:
      model[name] = tensors[name]
    else:
      unmapped.append(name)
  return model, state, unmapped


def _check_complete(tensors, num_layers, where):
  """The encoder and every head present are complete."""
  missing = [n for n in encoder_names(num_layers, with_pooler=False)
             if n not in tensors]
  for head in heads_of(tensors):
    missing.extend(n for n in _HEAD_TENSORS[head] if n not in tensors)
  if missing:
    raise common.UserError(
        "%s lacks %d tensor%s the model needs: %s%s" %
        (where, len(missing), "s" if len(missing) > 1 else "",
         ", ".join(missing[:8]), " ..." if len(missing) > 8 else ""))


def _names_text(names, limit=10):
  text = ", ".join(names[:limit])
  if len(names) > limit:
    text += ", ... (%d more)" % (len(names) - limit)
  return text


# ------------------------------------------------------------------------------------
# Vocabulary and case.
# ------------------------------------------------------------------------------------


def read_vocab_lines(path):
  with common.open_file(path, "rb") as f:
    data = f.read()
  return data


def vocab_from_tokenizer_json(path):
  """The vocab.txt bytes of the WordPiece vocabulary in a tokenizer.json."""
  tokenizer = read_json(path, "Tokenizer file")
  model = tokenizer.get("model") or {}
  if model.get("type") != "WordPiece" or not isinstance(
      model.get("vocab"), dict):
    raise common.UserError(
        "%s holds no WordPiece vocabulary (model type %r): pass the model's "
        "vocab.txt with --vocab_file" % (path, model.get("type")))
  tokens = {}
  for token, i in model["vocab"].items():
    tokens[int(i)] = token
  # A vocab.txt with a repeated line loses an id in tokenizer.json: that id
  # gets a placeholder line (no text maps to it, as before).
  gaps = [i for i in range(max(tokens) + 1) if i not in tokens]
  if gaps:
    logging.warning("%s has no token for the ids %s: written as [UNUSED_ID_n]",
                    path, _names_text([str(i) for i in gaps]))
  return "".join(tokens.get(i, "[UNUSED_ID_%d]" % i) + "\n"
                 for i in range(max(tokens) + 1)).encode("utf-8")


def lower_case_of_tokenizer(directory):
  """do_lower_case from tokenizer_config.json / tokenizer.json, or None."""
  path = os.path.join(directory, TOKENIZER_CONFIG)
  if common.exists(path):
    value = read_json(path, "Tokenizer config").get("do_lower_case")
    if isinstance(value, bool):
      return value, path
  path = os.path.join(directory, TOKENIZER_JSON)
  if common.exists(path):
    normalizer = read_json(path, "Tokenizer file").get("normalizer") or {}
    if isinstance(normalizer.get("lowercase"), bool):
      return normalizer["lowercase"], path
  return None, None


def choose_lower_case(given, found, found_path):
  """--do_lower_case when given on the command line, else the one found."""
  if given is not None:
    if found is not None and found != given:
      logging.warning("--do_lower_case=%s overrides do_lower_case=%s of %s",
                      given, found, found_path)
    return given
  if found is not None:
    logging.info("do_lower_case=%s (from %s)", found, found_path)
    return found
  return True  # The original flag's default.


def check_case_matches_name(do_lower_case, path):
  """The original's check, by the name of the directory holding the model."""
  import tokenization  # pylint: disable=g-import-not-at-top
  name = os.path.basename(os.path.normpath(path))
  tokenization.validate_case_matches_checkpoint(
      do_lower_case, os.path.join(name, ORIGINAL_PREFIX), extended=True)
  words = set(re.split(r"[^a-z]+", name.lower()))
  if "uncased" in words and not do_lower_case:
    raise common.UserError(
        "%s looks like an uncased model but do_lower_case is False: pass "
        "--do_lower_case=True" % path)
  if "cased" in words and do_lower_case:
    raise common.UserError(
        "%s looks like a cased model but do_lower_case is True: pass "
        "--do_lower_case=False" % path)


# ------------------------------------------------------------------------------------
# Reading.
# ------------------------------------------------------------------------------------


def detect_format(path):
  """(ORIGINAL, checkpoint prefix) or (HF, directory); UserError otherwise."""
  if path.endswith("/") and len(path) > 1:
    path = path.rstrip("/")
  hf_files = (HF_CONFIG, HF_WEIGHTS, HF_SHARD_INDEX, HF_TORCH_WEIGHTS)
  if os.path.isdir(path) and any(
      os.path.exists(os.path.join(path, f)) for f in hf_files):
    return HF, path
  if (not os.path.isdir(path) and os.path.basename(path) in hf_files or
      path.endswith(".safetensors")):
    if os.path.exists(path):
      return HF, os.path.dirname(path) or "."
  neither = ("--input=%s is neither an original-format checkpoint (a prefix "
             "such as .../bert_model.ckpt with its .index and .data-* files, "
             "one of them, or their directory) nor a Hugging Face directory "
             "(config.json with model.safetensors or pytorch_model.bin): %s")
  if not common.is_remote(path) and not _may_be_original(path):
    # Said without loading TensorFlow.
    if os.path.isdir(path):
      found = sorted(os.listdir(path))
      what = ("found in it: %s" % _names_text(found, 8) if found
              else "the directory is empty")
    else:
      what = "no such file or checkpoint prefix"
      parent = os.path.dirname(path) or "."
      if os.path.isdir(parent):
        prefixes = sorted(n[:-len(".index")] for n in os.listdir(parent)
                          if n.endswith(".index"))
        if prefixes:
          what += "; checkpoints in %s: %s" % (parent,
                                               _names_text(prefixes, 8))
    raise common.UserError(neither % (path, what))
  import checkpoints  # pylint: disable=g-import-not-at-top
  try:
    return ORIGINAL, checkpoints.normalize_checkpoint_path(path)
  except (FileNotFoundError, ValueError) as e:
    raise common.UserError(neither % (path, common.one_line(e)))


def _may_be_original(path):
  """Whether a local path could name an original-format checkpoint."""
  if os.path.isdir(path):
    return any(n.endswith(".index") or n == "checkpoint"
               for n in os.listdir(path))
  return (os.path.exists(path + ".index") or
          re.search(r"\.(index|meta|data-\d{5}-of-\d{5})$", path) is not None)


def read_original(prefix, options):
  """A `Model` from an original-format checkpoint and the files beside it."""
  import checkpoints  # pylint: disable=g-import-not-at-top
  directory = os.path.dirname(prefix) or "."

  config_path = options.bert_config_file or os.path.join(directory, BERT_CONFIG)
  if not common.exists(config_path):
    raise common.UserError(
        "no %s beside %s: pass the model's config with --bert_config_file" %
        (BERT_CONFIG, prefix))
  config = read_json(config_path, "BERT config")
  check_config(config, config_path)

  vocab_path = options.vocab_file or os.path.join(directory, VOCAB)
  if not common.exists(vocab_path):
    raise common.UserError(
        "no %s beside %s: pass the model's vocabulary with --vocab_file" %
        (VOCAB, prefix))
  vocab = read_vocab_lines(vocab_path)

  found, found_path = lower_case_of_tokenizer(directory)
  do_lower_case = choose_lower_case(options.do_lower_case, found, found_path)
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenization.validate_case_matches_checkpoint(do_lower_case, prefix,
                                                extended=True)

  tensors = checkpoints.read_tensors(prefix)
  model_tensors, state, unmapped = _split_known(
      tensors, config["num_hidden_layers"])
  check_shapes(model_tensors, config, config_path)
  _check_complete(model_tensors, config["num_hidden_layers"], prefix)
  notes = []
  if state:
    notes.append("dropped the training state (%d tensors: Adam slots "
                 "<var>/adam_m, <var>/adam_v%s): a converted model starts "
                 "fresh training" %
                 (len(state), " and global_step" if "global_step" in state
                  else ""))
  if unmapped:
    notes.append("NOT CONVERTED, no place in a BERT model: %s" %
                 _names_text(unmapped))
  label_names = None
  if "output_weights" in model_tensors and options.task_name:
    label_names = labels_of_task(options.task_name,
                                 model_tensors["output_weights"].shape[0])
  logging.info("Read %d tensors from %s (config %s, vocabulary %s)",
               len(tensors), prefix, config_path, vocab_path)
  return Model(model_tensors, config, vocab, do_lower_case, label_names, notes)


def labels_of_task(task_name, num_labels):
  import run_classifier  # pylint: disable=g-import-not-at-top
  try:
    labels = run_classifier.get_processor(task_name).get_labels()
  except ValueError as e:
    raise common.UserError("--task_name: %s" % common.one_line(e))
  if labels is None:  # Regression (STS-B): one output.
    labels = ["LABEL_0"]
  if len(labels) != num_labels:
    raise common.UserError(
        "--task_name=%s has %d labels but the checkpoint's classifier head has "
        "%d outputs" % (task_name, len(labels), num_labels))
  return [str(label) for label in labels]


_SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16,
                       "I64": np.int64, "I32": np.int32, "I16": np.int16,
                       "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _load_safetensors_bfloat16(path):
  """Reads a safetensors file holding bfloat16, which numpy cannot represent.

  The format is an 8-byte little-endian header length, a JSON header of
  {name: {dtype, shape, data_offsets}} and the raw data. bfloat16 is the top
  half of a float32, so it widens to float32 exactly.
  """
  with open(path, "rb") as f:
    data = f.read()
  header_len = int.from_bytes(data[:8], "little")
  header = json.loads(data[8:8 + header_len])
  base = 8 + header_len
  tensors = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    begin, end = info["data_offsets"]
    raw = data[base + begin:base + end]
    if info["dtype"] == "BF16":
      value = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(
          np.float32)
    elif info["dtype"] in _SAFETENSORS_DTYPES:
      value = np.frombuffer(raw, np.dtype(_SAFETENSORS_DTYPES[
          info["dtype"]]).newbyteorder("<"))
    else:
      raise common.UserError("%s: tensor %s has the unsupported dtype %s" %
                             (path, name, info["dtype"]))
    tensors[name] = value.reshape(info["shape"]).copy()
  return tensors


def _load_safetensors(path):
  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_numpy
  try:
    return safetensors_numpy.load_file(path)
  except Exception as e:  # pylint: disable=broad-except
    if "bfloat16" in str(e):
      logging.info("%s holds bfloat16: widened to float32 exactly", path)
      return _load_safetensors_bfloat16(path)
    raise common.UserError("cannot read %s with safetensors: %s" %
                           (path, common.one_line(e)))


def read_hf_weights(directory):
  """name -> numpy array from model.safetensors (sharded) or the torch file."""
  single = os.path.join(directory, HF_WEIGHTS)
  index = os.path.join(directory, HF_SHARD_INDEX)
  torch_file = os.path.join(directory, HF_TORCH_WEIGHTS)
  if os.path.exists(single):
    return _load_safetensors(single), single
  if os.path.exists(index):
    weight_map = read_json(index, "Safetensors index").get("weight_map", {})
    tensors = {}
    for shard in sorted(set(weight_map.values())):
      tensors.update(_load_safetensors(os.path.join(directory, shard)))
    return tensors, index
  if os.path.exists(torch_file):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise common.UserError(
          "%s is a PyTorch pickle, which needs torch to read, and torch is not "
          "installed: pip install torch, or save the model as safetensors "
          "(model.save_pretrained(dir, safe_serialization=True))" % torch_file)
    state = torch.load(torch_file, map_location="cpu", weights_only=True)
    return {k: v.detach().float().numpy() if v.is_floating_point()
            else v.detach().numpy() for k, v in state.items()}, torch_file
  raise common.UserError(
      "%s holds no weights: expected %s, %s or %s" %
      (directory, HF_WEIGHTS, HF_SHARD_INDEX, HF_TORCH_WEIGHTS))


def read_hf(directory, options):
  """A `Model` from a Hugging Face directory."""
  config_path = os.path.join(directory, HF_CONFIG)
  if not os.path.exists(config_path):
    raise common.UserError("%s has no %s" % (directory, HF_CONFIG))
  hf_config = read_json(config_path, "Hugging Face config")
  config = config_from_hf(hf_config, config_path)
  weights, weights_path = read_hf_weights(directory)

  if options.vocab_file:
    vocab = read_vocab_lines(options.vocab_file)
  elif os.path.exists(os.path.join(directory, VOCAB)):
    vocab = read_vocab_lines(os.path.join(directory, VOCAB))
  elif os.path.exists(os.path.join(directory, TOKENIZER_JSON)):
    vocab = vocab_from_tokenizer_json(os.path.join(directory, TOKENIZER_JSON))
  else:
    raise common.UserError(
        "%s has neither vocab.txt nor tokenizer.json: pass the model's "
        "vocabulary with --vocab_file" % directory)
  found, found_path = lower_case_of_tokenizer(directory)
  do_lower_case = choose_lower_case(options.do_lower_case, found, found_path)
  check_case_matches_name(do_lower_case, directory)

  # Hugging Face name -> (original name, transpose), for every layout: with
  # or without the "bert." prefix, LayerNorm weight/bias or gamma/beta.
  num_layers = config["num_hidden_layers"]
  from_hf = {}
  for prefix in ("bert.", ""):
    for original, (hf, transpose) in encoder_names(num_layers,
                                                   hf_prefix=prefix).items():
      from_hf[hf] = (original, transpose)
  for head_tensors in _HEAD_TENSORS.values():
    for original, (hf, transpose) in head_tensors.items():
      from_hf[hf] = (original, transpose)
  for hf in list(from_hf):
    if hf.endswith("LayerNorm.weight"):
      from_hf[hf[:-len("weight")] + "gamma"] = from_hf[hf]
    elif hf.endswith("LayerNorm.bias"):
      from_hf[hf[:-len("bias")] + "beta"] = from_hf[hf]

  tensors, shown, ignored, unmapped = {}, {}, [], []
  for name in sorted(weights):
    value = np.asarray(weights[name])
    if name in from_hf:
      original, transpose = from_hf[name]
      tensors[original] = np.ascontiguousarray(value.T) if transpose else value
      shown[original] = (name, transpose)
    elif name.endswith("embeddings.position_ids"):
      ignored.append(name)  # A constant buffer (0, 1, 2, ...).
    elif name in ("cls.predictions.decoder.weight",
                  "cls.predictions.decoder.bias"):
      pass  # Tied to the word embeddings / cls.predictions.bias: below.
    else:
      unmapped.append(name)
  decoder = weights.get("cls.predictions.decoder.weight")
  if decoder is not None:
    embeddings = tensors.get("bert/embeddings/word_embeddings")
    if embeddings is None or not np.array_equal(decoder, embeddings):
      unmapped.append("cls.predictions.decoder.weight (differs from the word "
                      "embeddings; the original ties them)")
  decoder_bias = weights.get("cls.predictions.decoder.bias")
  if decoder_bias is not None:
    if "cls/predictions/output_bias" not in tensors:
      tensors["cls/predictions/output_bias"] = np.asarray(decoder_bias)
      shown["cls/predictions/output_bias"] = ("cls.predictions.decoder.bias",
                                              False)
    elif not np.array_equal(decoder_bias,
                            tensors["cls/predictions/output_bias"]):
      unmapped.append("cls.predictions.decoder.bias (differs from "
                      "cls.predictions.bias)")
  check_shapes(tensors, config, config_path, shown)
  _check_complete(tensors, num_layers, weights_path)
  for name, value in list(tensors.items()):
    # float16, float64 and bfloat16 (ml_dtypes' when TensorFlow is loaded).
    if value.dtype != np.float32 and (value.dtype.kind == "f" or
                                      value.dtype.name == "bfloat16"):
      tensors[name] = value.astype(np.float32)

  notes = []
  if ignored:
    notes.append("ignored the constant buffer%s %s" %
                 ("s" if len(ignored) > 1 else "", ", ".join(ignored)))
  if unmapped:
    notes.append("NOT CONVERTED, no place in the original model: %s" %
                 _names_text(unmapped))
  known = set(name for _, name, _ in ARCHITECTURES)
  for architecture in hf_config.get("architectures") or []:
    if architecture not in known:
      notes.append(
          "%s is not one of the classes this converter knows (%s): its "
          "tensors were mapped by name, e.g. a classifier.* head to "
          "output_weights/output_bias" % (architecture, ", ".join(
              sorted(known))))
  label_names = None
  if "output_weights" in tensors:
    id2label = hf_config.get("id2label") or {}
    n = tensors["output_weights"].shape[0]
    names = [id2label.get(str(i)) for i in range(n)]
    if all(names) and not all(x == "LABEL_%d" % i
                              for i, x in enumerate(names)):
      label_names = names
      notes.append("the classifier's labels (in output order): %s" %
                   ", ".join(names))
  logging.info("Read %d tensors from %s", len(weights), weights_path)
  return Model(tensors, config, vocab, do_lower_case, label_names, notes)


# ------------------------------------------------------------------------------------
# Writing.
# ------------------------------------------------------------------------------------


def write_original(model, directory):
  import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.save_bundle(os.path.join(directory, ORIGINAL_PREFIX),
                          model.tensors)
  common.write_text(os.path.join(directory, BERT_CONFIG),
                    json.dumps(model.config, indent=2, sort_keys=True) + "\n")
  with common.atomic_write(os.path.join(directory, VOCAB), "wb") as f:
    f.write(model.vocab_lines)
  common.write_text(os.path.join(directory, TOKENIZER_CONFIG),
                    json.dumps({"do_lower_case": model.do_lower_case},
                               indent=2) + "\n")
  return ORIGINAL_PREFIX


def write_hf(model, directory):
  """Writes the Hugging Face files; returns the class name."""
  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_numpy
  heads = heads_of(model.tensors)
  architecture, carried, pooler = architecture_for(heads)
  prefix = "bert." if architecture != "BertModel" else ""
  names = encoder_names(model.config["num_hidden_layers"], with_pooler=pooler,
                        hf_prefix=prefix)
  for head in carried:
    names.update(_HEAD_TENSORS[head])
  out, left = {}, []
  for original in sorted(model.tensors):
    if original not in names:
      left.append(original)
      continue
    hf, transpose = names[original]
    value = model.tensors[original]
    out[hf] = np.ascontiguousarray(value.T if transpose else value)
  if left:
    model.notes.append("NOT CONVERTED, %s has no place for: %s" %
                       (architecture, _names_text(left)))
  weights_path = os.path.join(directory, HF_WEIGHTS)
  safetensors_numpy.save_file(out, weights_path, metadata={"format": "pt"})
  _default_permissions(weights_path)
  num_labels = None
  if "classifier" in carried:
    num_labels = int(model.tensors["output_weights"].shape[0])
  hf_config = config_to_hf(model.config, architecture, model.label_names,
                           num_labels)
  common.write_text(os.path.join(directory, HF_CONFIG),
                    json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
  with common.atomic_write(os.path.join(directory, VOCAB), "wb") as f:
    f.write(model.vocab_lines)
  tokenizer_config = {
      "tokenizer_class": "BertTokenizer",
      "do_lower_case": model.do_lower_case,
      "model_max_length": model.config["max_position_embeddings"],
      "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
      "cls_token": "[CLS]", "mask_token": "[MASK]",
      "tokenize_chinese_chars": True, "strip_accents": None,
  }
  common.write_text(os.path.join(directory, TOKENIZER_CONFIG),
                    json.dumps(tokenizer_config, indent=2, sort_keys=True) +
                    "\n")
  return architecture


def _default_permissions(path):
  """The umask's permissions (safetensors creates its file 0600)."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, 0o666 & ~umask)


def _same_directory(a, b):
  """True when both directories hold the same files with the same bytes."""
  names = sorted(os.listdir(a))
  if names != sorted(os.listdir(b)):
    return False
  for name in names:
    pa, pb = os.path.join(a, name), os.path.join(b, name)
    if os.path.isdir(pa) or os.path.isdir(pb):
      return False
    with open(pa, "rb") as fa, open(pb, "rb") as fb:
      if fa.read() != fb.read():
        return False
  return True


def write_model(model, output, output_format, overwrite):
  """Writes the model under a temporary name, then renames it to `output`."""
  if common.is_remote(output):
    raise common.UserError("--output must be a local directory")
  existing = os.path.isdir(output) and os.listdir(output)
  if os.path.exists(output) and not os.path.isdir(output):
    raise common.UserError("--output=%s is a file, not a directory" % output)
  parent = os.path.dirname(os.path.abspath(output))
  os.makedirs(parent, exist_ok=True)
  with common.atomic_path(output) as tmp:
    os.makedirs(tmp)
    if output_format == HF:
      what = write_hf(model, tmp)
    else:
      what = "the original format (%s)" % write_original(model, tmp)
    if existing and not overwrite and not _same_directory(tmp, output):
      raise common.UserError(
          "--output=%s already holds a different model (%s): pass "
          "--overwrite to replace it, or choose another directory" %
          (output, _names_text(sorted(os.listdir(output)), 6)))
  return what


# ------------------------------------------------------------------------------------
# main.
# ------------------------------------------------------------------------------------


def convert(input_path, output, options=None):
  """Converts `input_path` into the directory `output`; returns the `Model`."""
  options = options or Options()
  if not input_path:
    raise common.UserError("--input is required")
  if not output:
    raise common.UserError("--output is required")

  input_format, location = detect_format(input_path)
  in_dir = location if input_format == HF else (os.path.dirname(location) or
                                                ".")
  if os.path.abspath(in_dir) == os.path.abspath(output):
    raise common.UserError("--output=%s is the input's directory: choose "
                           "another one" % output)
  output_format = options.output_format or (HF if input_format == ORIGINAL
                                            else ORIGINAL)
  logging.info("Converting %s (%s format) to %s (%s format)", location,
               "Hugging Face" if input_format == HF else "original",
               output, "Hugging Face" if output_format == HF else "original")

  if input_format == ORIGINAL:
    model = read_original(location, options)
  else:
    model = read_hf(location, options)
  if options.keep_layers:
    select_layers(model, options.keep_layers)
  vocab_size = len(model.vocab_lines.splitlines())
  if vocab_size > model.config["vocab_size"]:
    raise common.UserError(
        "the vocabulary has %d entries but the model only %d (vocab_size): "
        "wrong vocabulary for this model" % (vocab_size,
                                             model.config["vocab_size"]))

  what = write_model(model, output, output_format, options.overwrite)
  for note in model.notes:
    if note.startswith("NOT CONVERTED"):
      logging.warning("%s", note)
    else:
      logging.info("Note: %s", note)
  logging.info("Wrote %s: %d tensors as %s, do_lower_case=%s", output,
               len(model.tensors), what, model.do_lower_case)
  model.architecture = what
  return model


def main(_):
  options = Options(
      bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file,
      do_lower_case=(FLAGS.do_lower_case if FLAGS["do_lower_case"].present
                     else None),
      task_name=FLAGS.task_name, output_format=FLAGS.output_format,
      keep_layers=FLAGS.keep_layers, overwrite=FLAGS.overwrite)
  convert(FLAGS.input, FLAGS.output, options)


if __name__ == "__main__":
  define_flags()
  app.run(common.main_wrapper(main))
