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
"""The main BERT model and related functions, on TensorFlow 2.

Computes exactly what the original TF1 `modeling.py` computed (same math, order
of operations and variable names) as a `tf.Module` that owns its variables,
each registered under its original checkpoint name: `named_variables()` lists
them in the original creation order. `BertModel(config, is_training,
input_ids=...)` runs at once and keeps the original accessors;
`model(input_ids, input_mask, token_type_ids, training)` is the reusable call
form, returning `BertOutputs`.
"""

import collections
import contextlib
import copy
import difflib
import functools
import json
import math
import re
import types

from absl import logging
import numpy as np
import tensorflow as tf

import common


class BertConfig(object):
  """Configuration for `BertModel`."""

  def __init__(self,
               vocab_size,
               hidden_size=768,
               num_hidden_layers=12,
               num_attention_heads=12,
               intermediate_size=3072,
               hidden_act="gelu",
               hidden_dropout_prob=0.1,
               attention_probs_dropout_prob=0.1,
               max_position_embeddings=512,
               type_vocab_size=16,
               initializer_range=0.02):
    """Constructs BertConfig.

    Args:
      vocab_size: Vocabulary size of `inputs_ids` in `BertModel`.
      hidden_size: Size of the encoder layers and the pooler layer.
      num_hidden_layers: Number of hidden layers in the Transformer encoder.
      num_attention_heads: Number of attention heads of each attention layer.
      intermediate_size: Size of the feed-forward layer of the encoder.
      hidden_act: The activation (function or string) of encoder and pooler.
      hidden_dropout_prob: Dropout probability of all fully connected layers in
        the embeddings, encoder, and pooler.
      attention_probs_dropout_prob: Dropout ratio of attention probabilities.
      max_position_embeddings: The longest sequence the model can be used with.
      type_vocab_size: The vocabulary size of `token_type_ids`.
      initializer_range: The stdev of the truncated normal weight initializer.
    """
    # The original's attribute order (hidden_act before intermediate_size).
    self.vocab_size = vocab_size
    self.hidden_size = hidden_size
    self.num_hidden_layers = num_hidden_layers
    self.num_attention_heads = num_attention_heads
    self.hidden_act = hidden_act
    self.intermediate_size = intermediate_size
    self.hidden_dropout_prob = hidden_dropout_prob
    self.attention_probs_dropout_prob = attention_probs_dropout_prob
    self.max_position_embeddings = max_position_embeddings
    self.type_vocab_size = type_vocab_size
    self.initializer_range = initializer_range

  @classmethod
  def from_dict(cls, json_object):
    """Constructs a `BertConfig` from a Python dictionary of parameters.

    Every key becomes an attribute, unknown ones too (written back by
    `to_dict`), as in the original; missing keys keep their defaults.
    """
    config = BertConfig(vocab_size=None)
    for (key, value) in json_object.items():
      config.__dict__[key] = value
    return config

  # Keys a config file must hold: the shapes have no default that fits a
  # released checkpoint. The others keep the defaults above when missing.
  REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers",
                   "num_attention_heads", "intermediate_size")
  # Keys of released configs the model does not use (the Chinese and
  # multilingual models' pooler settings, Hugging Face's bookkeeping).
  KNOWN_EXTRA_KEYS = frozenset((
      "directionality", "pooler_fc_size", "pooler_num_attention_heads",
      "pooler_num_fc_layers", "pooler_size_per_head", "pooler_type",
      "architectures", "model_type", "layer_norm_eps", "pad_token_id",
      "position_embedding_type", "transformers_version", "use_cache",
      "gradient_checkpointing", "classifier_dropout", "torch_dtype"))

  @classmethod
  def from_json_file(cls, json_file):
    """Constructs a `BertConfig` from a json file of parameters.

    One clear error for a missing or bad file; a warning for each unknown key
    (kept, as in the original).
    """
    if not json_file or not tf.io.gfile.exists(json_file):
      raise common.UserError(
          "--bert_config_file %s does not exist: pass the bert_config.json "
          "that comes with the checkpoint (e.g. $BERT_BASE_DIR/"
          "bert_config.json)." % (json_file,))
    if tf.io.gfile.isdir(json_file):
      raise common.UserError(
          "--bert_config_file %s is a directory: pass the bert_config.json "
          "file inside it." % json_file)
    try:
      with tf.io.gfile.GFile(json_file, "r") as reader:
        obj = json.loads(reader.read())
    except ValueError as e:
      raise ValueError("Cannot parse the BERT config file %s as JSON: %s" %
                       (json_file, e)) from e
    if not isinstance(obj, dict):
      raise ValueError("The BERT config file %s must hold a JSON object, got %s"
                       % (json_file, type(obj).__name__))
    missing = [k for k in cls.REQUIRED_KEYS if k not in obj]
    if missing:
      raise common.UserError(
          "The BERT config file %s has no %s: a bert_config.json must give "
          "%s (use the file that comes with the checkpoint)." %
          (json_file, ", ".join("`%s`" % k for k in missing),
           ", ".join(cls.REQUIRED_KEYS)))
    known = set(BertConfig(vocab_size=None).__dict__) | cls.KNOWN_EXTRA_KEYS
    for key in obj:
      if key not in known:
        close = difflib.get_close_matches(key, sorted(known), n=1)
        logging.warning(
            "The BERT config file %s has an unknown key `%s` (kept, but the "
            "model does not use it)%s", json_file, key,
            "; did you mean `%s`?" % close[0] if close else ".")
    return cls.from_dict(obj)

  def to_dict(self):
    """Serializes this instance to a Python dictionary."""
    return copy.deepcopy(self.__dict__)

  def to_json_string(self):
    """Serializes this instance to a JSON string."""
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def validate(self):
    """Raises ValueError for values the model cannot use (the original failed
    later, or not at all); `BertModel` calls it first. Returns `self`."""
    for field in ("vocab_size", "hidden_size", "num_hidden_layers",
                  "num_attention_heads", "intermediate_size",
                  "max_position_embeddings", "type_vocab_size"):
      value = getattr(self, field, None)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("bert_config: `%s` must be a positive integer, got %r"
                         % (field, value))
    if self.hidden_size % self.num_attention_heads != 0:
      raise ValueError(
          "The hidden size (%d) is not a multiple of the number of attention "
          "heads (%d)" % (self.hidden_size, self.num_attention_heads))

    def real(value):
      return isinstance(value, (int, float)) and not isinstance(value, bool)

    for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, field, None)
      if value is not None and not (real(value) and 0.0 <= value < 1.0):
        raise ValueError("bert_config: `%s` must be in [0, 1), got %r" %
                         (field, value))
    if not (real(self.initializer_range) and self.initializer_range > 0):
      raise ValueError("bert_config: `initializer_range` must be a positive "
                       "number, got %r" % (self.initializer_range,))
    get_activation(self.hidden_act)
    return self


def check_vocab_size(vocab_file_or_size, config):
  """Fails early when the vocabulary has more ids than `config.vocab_size`.

  The original did not check: ids past the embedding table failed deep in the
  graph on CPU and read garbage on GPU/TPU (NaN losses, google-research/bert
  #82). Takes a vocab file (one id per line, as `tokenization.load_vocab`), a
  mapping token -> id or a number of ids; returns the number of ids.
  """
  source = ""
  if isinstance(vocab_file_or_size, (int, np.integer)):
    size = int(vocab_file_or_size)
  elif isinstance(vocab_file_or_size, collections.abc.Mapping):
    size = max(vocab_file_or_size.values(), default=-1) + 1
  else:
    source = "file %s " % vocab_file_or_size
    size = common.count_lines(str(vocab_file_or_size))
  if config.vocab_size is not None and size > config.vocab_size:
    raise ValueError(
        "The vocabulary %shas %d entries but bert_config vocab_size is %d: ids "
        ">= %d would index past the embedding table. Use the vocab.txt that "
        "belongs to this bert_config.json (or fix vocab_size)." %
        (source, size, config.vocab_size, config.vocab_size))
  return size


BertOutputs = collections.namedtuple(
    "BertOutputs",
    ["sequence_output", "pooled_output", "all_encoder_layers",
     "embedding_output"])


def create_initializer(initializer_range=0.02):
  """Creates a `truncated_normal_initializer` with the given range."""
  return functools.partial(tf.random.truncated_normal,
                           stddev=initializer_range)


zeros_initializer = tf.zeros
ones_initializer = tf.ones


def create_variable(name, shape, initializer=None):
  """A float32 `tf.Variable` to be saved under `name` (its original name).

  The caller registers it under `name` in its `named_variables()`; checkpoints
  use that registry, never `tf.Variable.name`. `initializer(shape, dtype)`
  defaults to the truncated normal with stddev 0.02.
  """
  if initializer is None:
    initializer = create_initializer(0.02)
  shape = [int(d) for d in shape]
  if in_tf1_graph():
    # A `get_variable` in the current variable scope: original names, and
    # `reuse=` and `tf.train.init_from_checkpoint` work as in the original.
    return tf.compat.v1.get_variable(
        name, shape=shape, dtype=tf.float32,
        initializer=lambda shape, dtype=tf.float32, partition_info=None:
        initializer(shape, dtype=dtype))
  with tf.init_scope():
    initial_value = initializer(shape, dtype=tf.float32)
  return tf.Variable(initial_value, name=name.replace("/", "__"))


def in_tf1_graph():
  """True when building a TF1-style graph (`tensorflow.compat.v1` with v2
  behaviour disabled): neither eager nor inside a `tf.function`. Only there do
  the original's variable scopes, `get_variable` and graph train ops apply."""
  return not (tf.executing_eagerly() or tf.inside_function())


def original_variable_name(variable_or_name):
  """The original checkpoint name of a variable (or name): no `:N`, and the
  "__" of `create_variable`'s TF2 names read as "/"."""
  name = getattr(variable_or_name, "name", variable_or_name)
  return re.sub(r":\d+$", "", name).replace("__", "/")


class _NamedModule(tf.Module):
  """A tf.Module with an ordered registry original-name -> variable."""

  def __init__(self):
    # The original names ("/") live in the registry only; the module name must
    # be a valid TF1 root name scope (no leading underscore).
    super(_NamedModule, self).__init__(
        name=re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__.lstrip("_"))
        .lower())
    self._named = collections.OrderedDict()

  def _add(self, name, variable):
    if name in self._named:
      raise ValueError("Duplicate variable name %s" % name)
    self._named[name] = variable
    return variable

  def _variable(self, name, shape, initializer):
    return self._add(name, create_variable(name, shape, initializer))

  def _add_all(self, module):
    for name, variable in module.named_variables().items():
      self._add(name, variable)
    return module

  def named_variables(self):
    """OrderedDict original name (no `:0`) -> tf.Variable, creation order."""
    return collections.OrderedDict(self._named)


class Dense(_NamedModule):
  """`x @ kernel + bias` (+ activation) with variables `<name>/kernel|bias`,
  computed in the dtype of `x` (the float32 variables are cast to it)."""

  def __init__(self, name, in_size, out_size, activation=None,
               initializer_range=0.02, kernel_initializer=None):
    super(Dense, self).__init__()
    self.activation = get_activation(activation)
    self.kernel = self._variable(
        name + "/kernel", [in_size, out_size],
        kernel_initializer or create_initializer(initializer_range))
    self.bias = self._variable(name + "/bias", [out_size], zeros_initializer)

  @tf.autograph.experimental.do_not_convert
  def __call__(self, x):
    y = self.linear(x)
    if self.activation is not None:
      y = self.activation(y)
    return y

  @tf.autograph.experimental.do_not_convert
  def linear(self, x):
    """`x @ kernel + bias`, without the activation."""
    kernel = _kernel(self.kernel, x.dtype)
    bias = _cast(self.bias, x.dtype)
    if x.shape.rank == 2:
      y = tf.nn.bias_add(tf.matmul(x, kernel), bias)
    else:
      # Through the 2-D layout: a plain MatMul (+ BiasAdd) is what the CPU
      # kernels fuse best.
      shape = get_shape_list(x)
      y = tf.nn.bias_add(tf.matmul(tf.reshape(x, [-1, shape[-1]]), kernel),
                         bias)
      y = tf.reshape(y, shape[:-1] + [kernel.shape[-1]])
    return y


class LayerNorm(_NamedModule):
  """Layer normalisation over the last axis with `<name>/beta|gamma`.

  Statistics and output are float32 (inputs of other dtypes are cast), with
  epsilon 1e-12 and the population variance, like TF1 contrib layer_norm.
  """

  def __init__(self, name, width):
    super(LayerNorm, self).__init__()
    # The original creates beta before gamma.
    self.beta = self._variable(name + "/beta", [width], zeros_initializer)
    self.gamma = self._variable(name + "/gamma", [width], ones_initializer)

  @tf.autograph.experimental.do_not_convert
  def __call__(self, x):
    return layer_norm(x, beta=self.beta, gamma=self.gamma)


def _cast(x, dtype):
  if x.dtype == dtype:
    return x
  return tf.cast(x, dtype)


# ------------------------------------------------------------------------------
# Constant kernels (prediction). A prediction function traced inside
# `constant_kernels()` takes each matmul kernel as a graph constant in its
# compute dtype (the variable's value at trace time) instead of a variable
# read. TensorFlow's oneDNN MatMul (+ BiasAdd, + GELU) then sees a constant
# filter: it picks the blocked AMX inner product and keeps the reordered
# weights, where a variable kernel gets a reference-layout gemm (bfloat16 on
# the AVX-512 + AMX host: a 4096x256 by 256x1024 MatMul+BiasAdd+GELU 2.0 ms
# against 3.6 ms). Same values, same math; float32 gained nothing there.
# ------------------------------------------------------------------------------

_CONSTANT_KERNELS = [0]


@contextlib.contextmanager
def constant_kernels(enabled=True):
  """While tracing a *prediction* function (a `tf.function` body) inside this
  context, matmul kernels enter the graph as constants holding their current
  values: trace again after the weights change. Eager calls and TF1 graphs
  are unaffected; a training call raises."""
  _CONSTANT_KERNELS[0] += bool(enabled)
  try:
    yield
  finally:
    _CONSTANT_KERNELS[0] -= bool(enabled)


def _constant_kernels():
  if not (_CONSTANT_KERNELS[0] and tf.inside_function()):
    return False
  with tf.init_scope():  # A tf.function's trace (values readable), not TF1.
    return tf.executing_eagerly()


def _kernel(variables, dtype):
  """A matmul kernel in `dtype` from one variable or several joined along the
  output axis; under `constant_kernels()` a constant of their values."""
  if not isinstance(variables, (list, tuple)):
    variables = [variables]
  if _constant_kernels():
    with tf.init_scope():
      value = tf.concat([tf.cast(v, dtype) for v in variables], axis=1)
      value = value.numpy()
    return tf.constant(value)
  parts = [_cast(v, dtype) for v in variables]
  return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)


class EncoderOptions(collections.namedtuple(
    "EncoderOptions", ["use_one_hot_embeddings", "compute_dtype", "recompute",
                       "fused_blocks"])):
  """How the encoder computes, not what: one object built once from the flags.

  use_one_hot_embeddings: the TPU embedding path (a one-hot matmul).
  compute_dtype: matmul dtype (float32, bfloat16, float16); variables,
    LayerNorm, softmax and outputs stay float32.
  recompute: activation checkpointing (`tf.recompute_grad`) of each layer.
  fused_blocks: XLA-fused kernels (same math; float32 values differ by
    rounding only). True: the attention core and the GELU as XLA kernels with
    hand-written backward passes. "epilogues": besides, each output
    projection's bias, dropout, residual add and LayerNorm as one XLA kernel
    (and, below float32, biases folded into their matmuls); when predicting
    the attention core and GELU then stay op by op. False: op by op.
  Pass it whole: `BertModel(config, options=options)`.
  """
  __slots__ = ()

  def __new__(cls, use_one_hot_embeddings=False, compute_dtype=tf.float32,
              recompute=False, fused_blocks=False):
    return super(EncoderOptions, cls).__new__(
        cls, bool(use_one_hot_embeddings), tf.as_dtype(compute_dtype),
        bool(recompute), _fused_setting(fused_blocks))


def _fused_setting(value):
  return value if value == "epilogues" else bool(value)


class BertModel(_NamedModule):
  """BERT model ("Bidirectional Encoder Representations from Transformers").

  Example usage (original style):

  ```python
  # Already been converted into WordPiece token ids
  input_ids = tf.constant([[31, 51, 99], [15, 5, 0]])
  input_mask = tf.constant([[1, 1, 1], [1, 1, 0]])
  token_type_ids = tf.constant([[0, 0, 1], [0, 2, 0]])

  config = modeling.BertConfig(vocab_size=32000, hidden_size=512,
    num_hidden_layers=8, num_attention_heads=6, intermediate_size=1024)

  model = modeling.BertModel(config=config, is_training=True,
    input_ids=input_ids, input_mask=input_mask, token_type_ids=token_type_ids)

  pooled_output = model.get_pooled_output()
  ```

  Reusable call form: `BertModel(config)(input_ids, input_mask,
  token_type_ids, training=True)` returns `BertOutputs`.
  """

  def __init__(self,
               config,
               is_training=False,
               input_ids=None,
               input_mask=None,
               token_type_ids=None,
               use_one_hot_embeddings=False,
               scope=None,
               compute_dtype=tf.float32,
               recompute=False,
               fused_blocks=False,
               options=None):
    """Constructor for BertModel.

    Args:
      config: `BertConfig` instance.
      is_training: bool. Whether dropout applies in the immediate forward pass
        (the call form takes its own `training` argument).
      input_ids: optional int32 Tensor of shape [batch_size, seq_length]. When
        given, the forward pass runs at once (the original behaviour).
      input_mask: (optional) int32 Tensor of shape [batch_size, seq_length].
      token_type_ids: (optional) int32 Tensor of shape [batch_size, seq_length].
      use_one_hot_embeddings, compute_dtype, recompute, fused_blocks: see
        `EncoderOptions`.
      scope: (optional) variable scope. Defaults to "bert".
      options: an `EncoderOptions`; when given it sets the four arguments
        above.

    Raises:
      ValueError: The config or one of the input tensor shapes is invalid.
    """
    super(BertModel, self).__init__()
    if options is not None:
      (use_one_hot_embeddings, compute_dtype, recompute,
       fused_blocks) = options
    self.config = copy.deepcopy(config)
    self.config.validate()
    self.is_training = bool(is_training)
    self.use_one_hot_embeddings = bool(use_one_hot_embeddings)
    self.compute_dtype = tf.as_dtype(compute_dtype)
    if self.compute_dtype not in (tf.float32, tf.bfloat16, tf.float16):
      raise ValueError("compute_dtype must be float32, bfloat16 or float16, "
                       "got %s" % self.compute_dtype.name)
    self.recompute = bool(recompute)
    self.fused_blocks = _fused_setting(fused_blocks)
    self.scope = scope or "bert"
    cfg = self.config
    width = cfg.hidden_size
    init = create_initializer(cfg.initializer_range)
    prefix = self.scope + "/"

    # Embeddings, in the original creation order.
    self.embedding_table = self._variable(
        prefix + "embeddings/word_embeddings", [cfg.vocab_size, width], init)
    self.token_type_table = self._variable(
        prefix + "embeddings/token_type_embeddings",
        [cfg.type_vocab_size, width], init)
    self.full_position_embeddings = self._variable(
        prefix + "embeddings/position_embeddings",
        [cfg.max_position_embeddings, width], init)
    self.embeddings_layer_norm = self._add_all(
        LayerNorm(prefix + "embeddings/LayerNorm", width))

    self.layers = []
    for i in range(cfg.num_hidden_layers):
      self.layers.append(_EncoderLayer(
          prefix + "encoder/layer_%d" % i, cfg, init))
      self._add_all(self.layers[-1])

    self.pooler = self._add_all(
        Dense(prefix + "pooler/dense", width, width, activation=tf.tanh,
              kernel_initializer=init))

    # Outputs of the latest call, for the accessors, in a plain holder that
    # tf.Module's attribute tracking (and SavedModel export) never sees.
    self._last = types.SimpleNamespace(outputs=None, inputs=None)
    if input_ids is not None:
      self(input_ids, input_mask=input_mask, token_type_ids=token_type_ids,
           training=self.is_training)
      if tf.executing_eagerly():
        # Eager values are computed once; the accessors recompute them from
        # these inputs so that weights loaded after construction (the TF1
        # order: build, then restore) are the ones used.
        self._last.inputs = (input_ids, input_mask, token_type_ids,
                             self.is_training)

  # --------------------------------------------------------------- call form
  def __call__(self, input_ids, input_mask=None, token_type_ids=None,
               training=False):
    """Runs the encoder on int [batch_size, seq_length] inputs (the mask, 1 =
    real token, defaults to all ones, the token types to 0); `training`
    applies dropout. Returns float32 `BertOutputs`."""
    outputs = self._forward(input_ids, input_mask, token_type_ids, training)
    self._last.outputs = outputs
    self._last.inputs = None
    return outputs

  @tf.autograph.experimental.do_not_convert
  def _forward(self, input_ids, input_mask, token_type_ids, training):
    cfg = self.config
    input_ids = tf.convert_to_tensor(input_ids)
    if not input_ids.dtype.is_integer:
      raise ValueError("input_ids must be an integer tensor, got %s" %
                       input_ids.dtype.name)
    input_shape = get_shape_list(input_ids, expected_rank=2, name="input_ids")
    batch_size, seq_length = input_shape[0], input_shape[1]
    if (isinstance(seq_length, int) and
        seq_length > cfg.max_position_embeddings):
      raise ValueError(
          "The sequence length (%d) is longer than max_position_embeddings "
          "(%d) of the BERT config: use --max_seq_length <= %d or a model "
          "with more position embeddings." %
          (seq_length, cfg.max_position_embeddings,
           cfg.max_position_embeddings))

    if input_mask is None:
      input_mask = tf.ones_like(input_ids, dtype=tf.int32)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids, dtype=tf.int32)
    input_mask = _like_input_ids(input_mask, input_ids, "input_mask")
    token_type_ids = _like_input_ids(token_type_ids, input_ids,
                                     "token_type_ids")

    training = bool(training)
    hidden_dropout = cfg.hidden_dropout_prob if training else 0.0
    attention_dropout = cfg.attention_probs_dropout_prob if training else 0.0
    width = cfg.hidden_size

    # --- Embeddings (2-D [B*S, H] layout).
    flat_ids = tf.reshape(input_ids, [-1])
    if self.use_one_hot_embeddings:
      one_hot_input_ids = tf.one_hot(flat_ids, depth=cfg.vocab_size)
      word = tf.matmul(one_hot_input_ids, self.embedding_table)
    else:
      word = tf.gather(self.embedding_table, flat_ids)
    # Token types always go through a one-hot matmul, as in the original: an id
    # >= type_vocab_size silently gives a zero vector.
    flat_token_type_ids = tf.reshape(token_type_ids, [-1])
    one_hot_ids = tf.one_hot(flat_token_type_ids, depth=cfg.type_vocab_size)
    token_type = tf.matmul(one_hot_ids, self.token_type_table)
    if not isinstance(seq_length, int):
      tf.debugging.assert_less_equal(
          seq_length, cfg.max_position_embeddings,
          message="The sequence length is longer than "
          "max_position_embeddings of the BERT config")
    position = tf.slice(self.full_position_embeddings, [0, 0],
                        [seq_length, -1])
    embeddings = tf.reshape(word + token_type, [batch_size, seq_length, width])
    embeddings += tf.expand_dims(position, 0)
    # "epilogues": the LayerNorms as XLA kernels that also give the next
    # matmul its input (`low`, see `_fused_norm`); not under recompute.
    epilogues = (self.fused_blocks == "epilogues" and
                 not (training and self.recompute))
    if training and _constant_kernels():
      raise ValueError("modeling.constant_kernels() is for prediction "
                       "functions: call the model with training=False there.")
    # Below float32 the epilogues fold the Q/K/V bias into its kernel, unless
    # the kernels are constants (oneDNN's fused MatMul+BiasAdd is then faster).
    low_pad = (_BIAS_PAD if epilogues and self.compute_dtype != tf.float32 and
               not _constant_kernels() else 0)
    if epilogues and not training:
      norm = self.embeddings_layer_norm
      hidden, low = _fused_norm((tf.reshape(embeddings, [-1, width]),),
                                norm.gamma, norm.beta, self.compute_dtype,
                                low_pad)
      embedding_output = tf.reshape(hidden, [batch_size, seq_length, width])
    else:
      embedding_output = dropout(self.embeddings_layer_norm(embeddings),
                                 hidden_dropout)
      hidden = tf.reshape(embedding_output, [-1, width])
      if epilogues:
        low = _low_copy(hidden, self.compute_dtype, low_pad)

    # --- Attention mask addend, built once: [B, 1, 1, S] (broadcast over the
    # heads and the query axis; equal to the original's [B, 1, F, K] adder).
    mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, 1, seq_length]),
                   tf.float32)
    attention_adder = (1.0 - mask) * -10000.0

    all_layer_outputs = []
    # With recompute, dropout masks come from stateless ops with per-layer
    # seeds drawn here, so that a recomputed layer reuses its masks.
    if (self.recompute and training and
        (hidden_dropout or attention_dropout)):
      seeds = tf.random.uniform([len(self.layers), 3, 2], maxval=2**31 - 1,
                                dtype=tf.int32)
    else:
      seeds = None
    for index, layer in enumerate(self.layers):
      layer_fn = _LayerCall(layer, seq_length, self.compute_dtype,
                            hidden_dropout, attention_dropout, attention_adder,
                            seeds[index] if seeds is not None else None,
                            fused=(self.fused_blocks if training else
                                   self.fused_blocks is True),
                            training=training)
      if epilogues:
        hidden, low = layer_fn.with_epilogues(hidden, low, low_pad)
        all_layer_outputs.append(
            tf.reshape(hidden, [batch_size, seq_length, width]))
        continue
      if self.recompute:
        # Only the hidden state is an argument: the mask and the dropout seeds
        # are captured, so no gradient is computed for them.
        layer_fn = tf.recompute_grad(layer_fn)
      hidden = layer_fn(hidden)
      all_layer_outputs.append(
          tf.reshape(hidden, [batch_size, seq_length, width]))

    sequence_output = all_layer_outputs[-1]
    first_token_tensor = sequence_output[:, 0, :]
    pooled_output = _cast(
        self.pooler(_cast(first_token_tensor, self.compute_dtype)), tf.float32)
    return BertOutputs(sequence_output=sequence_output,
                       pooled_output=pooled_output,
                       all_encoder_layers=all_layer_outputs,
                       embedding_output=embedding_output)

  # --------------------------------------------------------------- accessors
  def _require_outputs(self):
    """The latest outputs; in eager mode, those of the constructor's inputs are
    recomputed with the current weights (with dropout when is_training, each
    accessor call drawing its own masks)."""
    if self._last.inputs is not None and tf.executing_eagerly():
      self._last.outputs = self._forward(*self._last.inputs)
    if self._last.outputs is None:
      raise ValueError(
          "BertModel has no outputs yet: pass input_ids to the constructor or "
          "call the model (model(input_ids, ...)) first.")
    return self._last.outputs

  @property
  def pooled_output(self):
    return self._require_outputs().pooled_output

  @property
  def sequence_output(self):
    return self._require_outputs().sequence_output

  @property
  def all_encoder_layers(self):
    return self._require_outputs().all_encoder_layers

  @property
  def embedding_output(self):
    return self._require_outputs().embedding_output

  def get_pooled_output(self):
    return self.pooled_output

  def get_sequence_output(self):
    """The encoder's final layer, float [batch_size, seq_length, hidden]."""
    return self.sequence_output

  def get_all_encoder_layers(self):
    return list(self.all_encoder_layers)

  def get_embedding_output(self):
    """The input of the encoder: the summed word, position and token type
    embeddings after LayerNorm (and dropout when training)."""
    return self.embedding_output

  def get_embedding_table(self):
    return self.embedding_table


class _EncoderLayer(_NamedModule):
  """One post-LN Transformer block with the original variable names."""

  def __init__(self, prefix, cfg, init):
    super(_EncoderLayer, self).__init__()
    width = cfg.hidden_size
    self.num_heads = cfg.num_attention_heads
    self.size_per_head = width // cfg.num_attention_heads

    def dense(name, in_size, out_size, activation=None):
      return self._add_all(Dense(prefix + name, in_size, out_size, activation,
                                 kernel_initializer=init))

    self.query = dense("/attention/self/query", width, width)
    self.key = dense("/attention/self/key", width, width)
    self.value = dense("/attention/self/value", width, width)
    self.attention_output = dense("/attention/output/dense", width, width)
    self.attention_layer_norm = self._add_all(
        LayerNorm(prefix + "/attention/output/LayerNorm", width))
    self.intermediate = dense("/intermediate/dense", width,
                              cfg.intermediate_size, cfg.hidden_act)
    self.output_dense = dense("/output/dense", cfg.intermediate_size, width)
    self.output_layer_norm = self._add_all(
        LayerNorm(prefix + "/output/LayerNorm", width))


class _LayerCall(object):
  """Forward of one `_EncoderLayer` on the 2-D [B*S, H] layout, a plain
  callable for `tf.recompute_grad` (with `seeds`, dropout is stateless so the
  recomputation draws the same masks). `fused`: False (op by op), True (the
  all-XLA fused blocks) or "epilogues" (training: the fused GELU and
  `attention_for_training`)."""

  def __init__(self, layer, seq_length, compute_dtype, hidden_dropout,
               attention_dropout, attention_adder, seeds, fused=False,
               training=False):
    self.layer = layer
    self.fused = fused
    self.training = training
    self.seq_length = seq_length
    self.compute_dtype = compute_dtype
    self.hidden_dropout = hidden_dropout
    self.attention_dropout = attention_dropout
    self.attention_adder = attention_adder
    self.seeds = seeds

  def with_epilogues(self, hidden, low, low_pad):
    """The layer through the XLA epilogues (and, in training, the fused
    blocks): `hidden` float32 [B*S, H], `low` the compute-dtype copy the Q/K/V
    matmul reads (with `low_pad` extra columns, the first of ones, when the
    bias is folded into the kernel). Returns the same pair for the next
    layer."""
    layer = self.layer
    cdt = self.compute_dtype
    context = self._context(self._qkv(low, low_pad))
    # Predicting, the FFN's MatMul + BiasAdd + GELU is one oneDNN call (the
    # remapper's fusion, faster than the bare matmul and an XLA GELU); in
    # training the GELU is the fused block's, so the bias rides in the matmul.
    ffn_pad = low_pad if self.training else 0
    attention_output, attention_low = self._epilogue(
        context, layer.attention_output, hidden, layer.attention_layer_norm,
        ffn_pad, 1)
    if self.training:
      intermediate = layer.intermediate
      intermediate_output = _matmul_with_bias(
          attention_low, _cast(intermediate.kernel, cdt),
          _cast(intermediate.bias, cdt), ffn_pad)
      if intermediate.activation is gelu:
        intermediate_output = fused_gelu(intermediate_output)
      elif intermediate.activation is not None:
        intermediate_output = intermediate.activation(intermediate_output)
    else:
      intermediate_output = layer.intermediate(attention_low)
    return self._epilogue(intermediate_output, layer.output_dense,
                          attention_output, layer.output_layer_norm, low_pad, 2)

  def _epilogue(self, x, dense, residual, norm, low_pad, site):
    """LayerNorm(dropout(x @ kernel + bias) + residual) and its `low` copy."""
    y = tf.matmul(x, _kernel(dense.kernel, x.dtype))
    if not self.training:
      # With a constant kernel, oneDNN's MatMul+BiasAdd is the faster.
      parts = ((tf.nn.bias_add(y, _cast(dense.bias, x.dtype)), residual)
               if _constant_kernels() else (y, dense.bias, residual))
      return _fused_norm(parts, norm.gamma, norm.beta, x.dtype, low_pad)
    keep = None
    if self.hidden_dropout:
      keep = self._keep_mask(tf.shape(residual), self.hidden_dropout, site)
    return fused_norm_for_training(y, dense.bias, residual, norm.gamma,
                                   norm.beta, keep, self.hidden_dropout,
                                   low_pad)

  def _dropout(self, x, rate, site):
    if not rate:
      return x
    if self.seeds is not None:
      return tf.nn.experimental.stateless_dropout(x, rate=rate,
                                                  seed=self.seeds[site])
    return tf.nn.dropout(x, rate=rate)

  def _keep_mask(self, shape, rate, site):
    """The boolean keep mask of dropout at `rate`, for the fused kernels:
    with `seeds` the one `_dropout` would draw; else a fresh one."""
    if self.seeds is not None:
      uniform = tf.random.stateless_uniform(shape, seed=self.seeds[site])
      return uniform >= rate
    seed = tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return _draw_keep_mask(tf.stack(shape) if isinstance(shape, list)
                           else shape, seed, rate)

  def _qkv(self, x, low_pad=0):
    """The fused Q/K/V projection: one [B*S, H] x [H, 3H] matmul. The three
    variables stay separate (original names); only their values are joined."""
    layer = self.layer
    cdt = self.compute_dtype
    kernel = _kernel([layer.query.kernel, layer.key.kernel,
                      layer.value.kernel], cdt)
    bias = tf.concat([_cast(layer.query.bias, cdt),
                      _cast(layer.key.bias, cdt),
                      _cast(layer.value.bias, cdt)], axis=0)
    return _matmul_with_bias(_cast(x, cdt), kernel, bias, low_pad)

  def _context(self, qkv):
    """The attention core with its dropout: fused kernels or op by op."""
    layer = self.layer
    if self.fused:
      keep = None
      if self.attention_dropout:
        batch_size = tf.shape(qkv)[0] // self.seq_length
        keep = self._keep_mask(
            [batch_size, layer.num_heads, self.seq_length, self.seq_length],
            self.attention_dropout, 0)
      if self.fused == "epilogues":
        return attention_for_training(
            qkv, self.attention_adder, layer.num_heads, layer.size_per_head,
            self.seq_length, self.attention_dropout, keep)
      return fused_attention(qkv, self.attention_adder, layer.num_heads,
                             layer.size_per_head, self.attention_dropout, keep,
                             training=self.training)
    return _attention(
        qkv, self.attention_adder, layer.num_heads, layer.size_per_head,
        self.seq_length,
        lambda probs: self._dropout(probs, self.attention_dropout, 0))

  @tf.autograph.experimental.do_not_convert
  def __call__(self, hidden):
    layer = self.layer
    cdt = self.compute_dtype
    context = self._context(self._qkv(hidden))

    attention_output = _cast(layer.attention_output(context), tf.float32)
    attention_output = self._dropout(attention_output, self.hidden_dropout, 1)
    attention_output = layer.attention_layer_norm(attention_output + hidden)

    if self.fused and layer.intermediate.activation is gelu:
      intermediate_output = fused_gelu(
          layer.intermediate.linear(_cast(attention_output, cdt)))
    else:
      intermediate_output = layer.intermediate(_cast(attention_output, cdt))
    layer_output = _cast(layer.output_dense(intermediate_output), tf.float32)
    layer_output = self._dropout(layer_output, self.hidden_dropout, 2)
    return layer.output_layer_norm(layer_output + attention_output)


# ------------------------------------------------------------------------------
# XLA epilogues (fused_blocks="epilogues"): what follows an output projection
# (bias, dropout in training, residual add, LayerNorm, the cast for the next
# matmul) as one XLA kernel after a bias-free oneDNN matmul; in training with a
# hand-written backward, also one XLA kernel. Below float32 the Q/K/V bias (and
# in training the FFN bias) rides in its matmul as a kernel row against a
# column of ones: TF's fused bf16 MatMul+BiasAdd costs 1.2-1.5x the bare matmul
# on the AVX-512 + AMX host, the padded one 0.7-0.75x of that; _BIAS_PAD
# columns measured best. In-process A/B there (5 Dec, bench/bench_ab.py, ratio
# of medians): predicting, against op by op, W1 bf16 1.29x Mini, 1.12x Base,
# fp32 1.01-1.02x; training, against the fused blocks alone, W2 1.08x Mini
# fp32, 1.22x Mini bf16, 1.04x Base fp32, W3 1.06x Mini.
# ------------------------------------------------------------------------------

_BIAS_PAD = 32


def _low_copy(hidden, low_dtype, low_pad):
  """`hidden` cast to `low_dtype`, with `low_pad` extra columns [1, 0, ..., 0]
  (the column of ones a folded bias row multiplies)."""
  low = _cast(hidden, low_dtype)
  if low_pad:
    rows = tf.shape(low)[0]
    low = tf.concat([low, tf.ones([rows, 1], low_dtype),
                     tf.zeros([rows, low_pad - 1], low_dtype)], axis=1)
  return low


@tf.function(jit_compile=True, autograph=False)
def _fused_norm(parts, gamma, beta, low_dtype, low_pad):
  """LayerNorm of the sum of `parts` (cast to float32; broadcasting), and the
  result as `_low_copy` gives it to the next matmul."""
  total = _cast(parts[0], tf.float32)
  for part in parts[1:]:
    total += _cast(part, tf.float32)
  out = layer_norm(total, beta=beta, gamma=gamma)
  return out, _low_copy(out, low_dtype, low_pad)


@tf.function(jit_compile=True, autograph=False)
def _draw_keep_mask(shape, seed, rate):
  """uniform >= rate, drawn with XLA's threefry: 2.5x TF's RandomUniform on
  the AVX-512 host ([16, 4, 128, 128]: 0.9 ms against 2.4; XLA's Philox took
  200 ms); training steps with fused blocks 1.02x (Mini W2 fp32), 1.08x (bf16)
  in-process A/B."""
  return tf.random.stateless_uniform(shape, seed, alg="threefry") >= rate


def _matmul_with_bias(low, kernel, bias, low_pad):
  """low @ kernel + bias; with `low_pad`, the bias as a row of the kernel."""
  if not low_pad:
    return tf.nn.bias_add(tf.matmul(low, kernel), bias)
  kernel = tf.concat([kernel, bias[tf.newaxis],
                      tf.zeros([low_pad - 1, kernel.shape[1]], kernel.dtype)],
                     axis=0)
  return tf.matmul(low, kernel)


@tf.function(jit_compile=True, autograph=False)
def _fused_norm_forward(y, bias, residual, gamma, beta, keep, rate, low_pad):
  z = _cast(y, tf.float32) + bias
  if keep is not None:
    z = tf.where(keep, z * (1.0 / (1.0 - rate)), tf.zeros_like(z))
  z += residual
  mean, variance = tf.nn.moments(z, axes=[-1], keepdims=True)
  rstd = tf.math.rsqrt(variance + 1e-12)
  normed = (z - mean) * rstd
  out = normed * gamma + beta
  return out, _low_copy(out, y.dtype, low_pad), normed, rstd


@tf.function(jit_compile=True, autograph=False)
def _fused_norm_backward(dout, dlow, normed, rstd, gamma, keep, rate,
                         y_dtype):
  width = get_shape_list(normed)[-1]
  if dlow is not None:
    dout += _cast(dlow[:, :width], tf.float32)
  dgamma = tf.reduce_sum(dout * normed, axis=0)
  dbeta = tf.reduce_sum(dout, axis=0)
  dnormed = dout * gamma
  dz = rstd * (dnormed - tf.reduce_mean(dnormed, axis=-1, keepdims=True) -
               normed * tf.reduce_mean(dnormed * normed, axis=-1,
                                       keepdims=True))
  dy = dz
  if keep is not None:
    dy = tf.where(keep, dz * (1.0 / (1.0 - rate)), tf.zeros_like(dz))
  return _cast(dy, y_dtype), tf.reduce_sum(dy, axis=0), dz, dgamma, dbeta


def fused_norm_for_training(y, bias, residual, gamma, beta, keep, rate,
                            low_pad):
  """LayerNorm(dropout(y + bias) + residual) in float32 with its `low` copy
  (see `_fused_norm`), forward and hand-written backward each one XLA
  kernel; `keep` (bool, like `residual`, or None) drops at `rate`."""
  rate = float(rate) if keep is not None else 0.0

  @tf.custom_gradient
  def norm(y, bias, residual, gamma, beta):
    out, low, normed, rstd = _fused_norm_forward(
        y, bias, residual, gamma, beta, keep, rate, low_pad)

    def grad(dout, dlow):
      return _fused_norm_backward(dout, dlow, normed, rstd, gamma, keep, rate,
                                  y.dtype)

    return (out, low), grad

  return norm(y, tf.convert_to_tensor(bias), residual,
              tf.convert_to_tensor(gamma), tf.convert_to_tensor(beta))


def _attention(qkv, attention_adder, num_heads, size_per_head, seq_length,
               dropout_fn):
  """Self-attention from the fused [B*S, 3H] Q/K/V projection to [B*S, H].

  Op by op, in the original's order: scores = Q K^T, * 1/sqrt(d), + the mask
  adder, softmax, `dropout_fn(probs)`, probs V.
  """
  width = num_heads * size_per_head
  q, k, v = _split_heads(qkv, num_heads, size_per_head, seq_length, 3)

  probs = dropout_fn(_attention_probs(q, k, attention_adder, size_per_head))

  # Context [B, N, F, d] -> [B, F, N, d] -> [B*F, H].
  context = tf.matmul(_cast(probs, q.dtype), v)
  context = tf.transpose(context, [0, 2, 1, 3])
  return tf.reshape(context, [-1, width])


# ------------------------------------------------------------------------------
# Fused blocks (--fused_blocks): the attention core (split heads to merge
# heads) and the tanh GELU each as one XLA-compiled function with a
# hand-written backward pass, also compiled (autodiff through them is slower
# than no fusion). Training steps 1.13-1.36x faster on CPU (docs/bench.md).
# ------------------------------------------------------------------------------

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _split_heads(x, num_heads, size_per_head, seq_length, parts):
  """[B*S, parts*N*d] -> `parts` tensors [B, N, S, d] (column p*H + h*d + j).

  One reshape to [B, S, parts, N, d] and one transpose to [parts, B, N, S, d]
  for the batched matmuls (plain BatchMatMul: tf.einsum's bf16 path is far
  slower on CPU). `unstack`, not slices: its gradient is one Pack, where each
  slice's gradient would write a zero-padded full-size tensor to be summed.
  """
  x = tf.reshape(x, [-1, seq_length, parts, num_heads, size_per_head])
  return tf.unstack(tf.transpose(x, [2, 0, 3, 1, 4]), num=parts, axis=0)


def _merge_heads(x):
  """[parts, B, N, S, d] -> [B*S, parts*N*d], the inverse of `_split_heads`."""
  shape = get_shape_list(x)
  x = tf.transpose(x, [1, 3, 0, 2, 4])
  return tf.reshape(x, [-1, shape[0] * shape[2] * shape[4]])


def _dropped(probs, keep, rate):
  if keep is None:
    return probs
  return tf.where(keep, probs * (1.0 / (1.0 - rate)), tf.zeros_like(probs))


def _attention_probs(q, k, attention_adder, size_per_head):
  """softmax(Q K^T * 1/sqrt(d) + mask adder) [B, N, F, K], float32."""
  return _softmax_of_scores(tf.matmul(q, k, transpose_b=True),
                            attention_adder, size_per_head)


def _softmax_of_scores(scores, attention_adder, size_per_head):
  scores = _cast(scores, tf.float32) * (1.0 / math.sqrt(float(size_per_head)))
  return tf.nn.softmax(scores + attention_adder)


def _scores_grad(dprobs, probs, keep, rate, size_per_head, dtype):
  """d(loss)/d(Q K^T) in `dtype` from d(loss)/d(dropped probs): the dropout,
  softmax and 1/sqrt(d) backward (the mask adder is constant)."""
  dprobs = _dropped(_cast(dprobs, tf.float32), keep, rate)
  dscores = probs * (dprobs - tf.reduce_sum(dprobs * probs, axis=-1,
                                            keepdims=True))
  return _cast(dscores * (1.0 / math.sqrt(float(size_per_head))), dtype)


@tf.function(jit_compile=True, autograph=False)
def _fused_attention_forward(qkv, attention_adder, keep, num_heads,
                             size_per_head, rate, with_probs):
  seq_length = get_shape_list(attention_adder)[-1]
  q, k, v = _split_heads(qkv, num_heads, size_per_head, seq_length, 3)
  probs = _attention_probs(q, k, attention_adder, size_per_head)
  context = tf.matmul(_cast(_dropped(probs, keep, rate), qkv.dtype), v)
  context = _merge_heads(tf.expand_dims(context, 0))
  return (context, probs) if with_probs else context


@tf.function(jit_compile=True, autograph=False)
def _fused_attention_backward(qkv, probs, keep, dcontext, num_heads,
                              size_per_head, rate):
  """d(loss)/d(qkv) from d(loss)/d(context), given the saved softmax output."""
  cdt = qkv.dtype
  seq_length = get_shape_list(probs)[-1]
  q, k, v = _split_heads(qkv, num_heads, size_per_head, seq_length, 3)
  (dcontext,) = _split_heads(_cast(dcontext, cdt), num_heads, size_per_head,
                             seq_length, 1)
  dv = tf.matmul(_cast(_dropped(probs, keep, rate), cdt), dcontext,
                 transpose_a=True)
  dscores = _scores_grad(tf.matmul(dcontext, v, transpose_b=True), probs, keep,
                         rate, size_per_head, cdt)
  dq = tf.matmul(dscores, k)
  dk = tf.matmul(dscores, q, transpose_a=True)
  return _merge_heads(tf.stack([dq, dk, dv], axis=0))


def fused_attention(qkv, attention_adder, num_heads, size_per_head,
                    dropout_rate=0.0, keep_mask=None, training=False):
  """The attention core of `_attention` as XLA-compiled kernels.

  From `qkv` [B*S, 3*H] (compute dtype) and the float32 mask adder [B, 1, 1,
  S] to the context [B*S, H]; `keep_mask` (bool [B, N, S, S] or None) applies
  dropout at `dropout_rate`. `training` attaches the hand-written gradient.
  Float32 values differ from the op-by-op path by rounding (~1e-7 relative).
  """
  rate = float(dropout_rate) if keep_mask is not None else 0.0
  if not training:
    return _fused_attention_forward(qkv, attention_adder, keep_mask,
                                    num_heads, size_per_head, rate, False)

  @tf.custom_gradient
  def attend(qkv):
    context, probs = _fused_attention_forward(
        qkv, attention_adder, keep_mask, num_heads, size_per_head, rate, True)

    def grad(dcontext):
      return _fused_attention_backward(qkv, probs, keep_mask, dcontext,
                                       num_heads, size_per_head, rate)

    return context, grad

  return attend(qkv)


@tf.function(jit_compile=True, autograph=False)
def _probs_kernel(scores, attention_adder, keep, rate, size_per_head):
  """The float32 softmax of the scores (kept for the backward) and the
  dropped probabilities in the scores' dtype (for the two matmuls)."""
  probs = _softmax_of_scores(scores, attention_adder, size_per_head)
  return probs, _cast(_dropped(probs, keep, rate), scores.dtype)


_scores_grad_kernel = tf.function(_scores_grad, jit_compile=True,
                                  autograph=False)


def attention_for_training(qkv, attention_adder, num_heads, size_per_head,
                           seq_length, dropout_rate=0.0, keep_mask=None):
  """`fused_attention` in training, with the six batched matmuls left to TF
  (oneDNN) and only the softmax, dropout and their backward as XLA kernels.

  The attention core of fused_blocks="epilogues" in training. XLA's CPU dot
  runs each batched product as one small GEMM per batch entry: BERT-Base,
  batch 16, seq 128, bf16 on the AVX-512 + AMX host, 5.5 ms against oneDNN's
  1.5 ms. A layer there: forward 22 -> 12.5 ms, backward 43 -> 21 ms (float32
  23 -> 20 and 41 -> 24: the backward reuses the forward's Q, K, V and
  dropped probabilities instead of recomputing them). Training steps
  (in-process A/B against `fused_attention`, 6 Dec): W2 bf16 1.11x Mini,
  1.12x Base; fp32 1.05x Mini, 1.02x Base; W3 Mini fp32 0.99x. Same values
  as `fused_attention` in float32; fused_blocks=True keeps that one (the
  AVX2 host, where this was not measured).
  """
  rate = float(dropout_rate) if keep_mask is not None else 0.0
  cdt = qkv.dtype

  @tf.custom_gradient
  def attend(qkv):
    q, k, v = _split_heads(qkv, num_heads, size_per_head, seq_length, 3)
    probs, dropped = _probs_kernel(tf.matmul(q, k, transpose_b=True),
                                   attention_adder, keep_mask, rate,
                                   size_per_head)
    context = _merge_heads(tf.expand_dims(tf.matmul(dropped, v), 0))

    def grad(dcontext):
      (dcontext,) = _split_heads(_cast(dcontext, cdt), num_heads,
                                 size_per_head, seq_length, 1)
      dv = tf.matmul(dropped, dcontext, transpose_a=True)
      dscores = _scores_grad_kernel(tf.matmul(dcontext, v, transpose_b=True),
                                    probs, keep_mask, rate, size_per_head, cdt)
      dq = tf.matmul(dscores, k)
      dk = tf.matmul(dscores, q, transpose_a=True)
      return _merge_heads(tf.stack([dq, dk, dv], axis=0))

    return context, grad

  return attend(qkv)


@tf.function(jit_compile=True, autograph=False)
def _fused_gelu_forward(x):
  y = _cast(x, tf.float32)
  y = 0.5 * y * (1.0 + tf.tanh(_GELU_C * (y + _GELU_A * (y * y * y))))
  return _cast(y, x.dtype)


@tf.function(jit_compile=True, autograph=False)
def _fused_gelu_backward(x, dy):
  y = _cast(x, tf.float32)
  t = tf.tanh(_GELU_C * (y + _GELU_A * (y * y * y)))
  slope = 0.5 * (1.0 + t) + 0.5 * y * (1.0 - t * t) * (
      _GELU_C * (1.0 + 3.0 * _GELU_A * y * y))
  return _cast(_cast(dy, tf.float32) * slope, dy.dtype)


@tf.custom_gradient
def fused_gelu(x):
  """`gelu` as one XLA-compiled pass, with a one-pass backward."""
  return _fused_gelu_forward(x), lambda dy: _fused_gelu_backward(x, dy)


def _like_input_ids(tensor, input_ids, name):
  """`tensor` as a tensor; ValueError unless its shape is input_ids'."""
  tensor = tf.convert_to_tensor(tensor)
  assert_rank(tensor, 2, name=name)
  if (tensor.shape.is_fully_defined() and input_ids.shape.is_fully_defined()
      and tensor.shape != input_ids.shape):
    raise ValueError("%s has shape %s but input_ids has shape %s" %
                     (name, tensor.shape.as_list(), input_ids.shape.as_list()))
  return tensor


def gelu(x):
  """GELU, the tanh approximation the original used:
  `0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))` (tf.nn.gelu
  computes the same formula, bitwise equal on float32, faster)."""
  return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
  """The exact (erf) GELU, x * Phi(x): Hugging Face's "gelu", the name
  convert_checkpoint.py gives such models so their numbers stay the same."""
  return tf.nn.gelu(x, approximate=False)


def get_activation(activation_string):
  """Maps a string to a Python function, e.g., "relu" => `tf.nn.relu`.

  None, "" and "linear" give None; a non-string is returned as it is; an
  unknown name raises ValueError.
  """
  if not isinstance(activation_string, str):
    return activation_string
  act = activation_string.lower()
  activations = {"": None, "linear": None, "relu": tf.nn.relu, "gelu": gelu,
                 "gelu_exact": gelu_exact, "tanh": tf.tanh}
  if act not in activations:
    raise ValueError("Unsupported activation: %s" % act)
  return activations[act]


def get_assignment_map_from_checkpoint(tvars, init_checkpoint):
  """Compute the union of the current variables and checkpoint variables.

  `tvars` is `model.named_variables()` or a list of variables (e.g.
  `tf.trainable_variables()` in graph code) or names. Returns an OrderedDict
  name -> name in checkpoint order for every checkpoint variable the model has
  and a dict with `name` and `name:0` -> 1 for each; raises ValueError when
  there is none (the original silently returned an empty map).
  """
  import checkpoints  # pylint: disable=g-import-not-at-top

  if isinstance(tvars, collections.abc.Mapping):
    tvars = tvars.keys()
  name_to_variable = collections.OrderedDict(
      (original_variable_name(var), var) for var in tvars)
  init_vars = checkpoints.list_variables(init_checkpoint)
  assignment_map = collections.OrderedDict()
  initialized_variable_names = {}
  for name, _ in init_vars:
    if name in name_to_variable:
      assignment_map[name] = name
      initialized_variable_names[name] = 1
      initialized_variable_names[name + ":0"] = 1

  if name_to_variable and not assignment_map:
    raise ValueError(
        "None of the %d variables (e.g. %s) is in the checkpoint %s (e.g. %s): "
        "nothing would be loaded. Check that the checkpoint belongs to this "
        "model (variable names such as bert/embeddings/word_embeddings)." %
        (len(name_to_variable), next(iter(name_to_variable)), init_checkpoint,
         init_vars[0][0] if init_vars else "no variables"))
  return (assignment_map, initialized_variable_names)


def dropout(input_tensor, dropout_prob):
  """Dropout with `dropout_prob` the probability of dropping a value."""
  if dropout_prob is None or dropout_prob == 0.0:
    return input_tensor
  return tf.nn.dropout(input_tensor, rate=dropout_prob)


def layer_norm(input_tensor, name=None, beta=None, gamma=None):
  """Layer normalization over the last axis, like TF1 contrib layer_norm.

  Population variance, epsilon 1e-12, in float32 (the output too). `beta` and
  `gamma` default to 0 and 1; `name` is unused (the variables belong to a
  `LayerNorm` module).
  """
  del name
  x = _cast(tf.convert_to_tensor(input_tensor), tf.float32)
  mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
  return tf.nn.batch_normalization(
      x, mean, variance, offset=beta, scale=gamma, variance_epsilon=1e-12)


def layer_norm_and_dropout(input_tensor, dropout_prob, name=None, beta=None,
                           gamma=None):
  """Runs layer normalization followed by dropout."""
  return dropout(layer_norm(input_tensor, name, beta=beta, gamma=gamma),
                 dropout_prob)


def create_attention_mask_from_input_mask(from_tensor, to_mask):
  """Float mask [batch_size, from_seq_length, to_seq_length] from `from_tensor`
  [batch_size, from_seq_length, ...] and `to_mask` [batch_size, to_seq_length].
  """
  batch_size, from_seq_length = get_shape_list(
      from_tensor, expected_rank=[2, 3])[:2]
  to_seq_length = get_shape_list(to_mask, expected_rank=2)[1]
  to_mask = tf.cast(
      tf.reshape(to_mask, [batch_size, 1, to_seq_length]), tf.float32)
  # Attending *from* padding does not matter (only *to* it): all ones.
  broadcast_ones = tf.ones(
      shape=[batch_size, from_seq_length, 1], dtype=tf.float32)
  return broadcast_ones * to_mask


def get_shape_list(tensor, expected_rank=None, name=None):
  """The shape of `tensor` as a list: static dimensions as ints, dynamic ones
  as scalar tensors. Raises ValueError unless the rank is `expected_rank` (an
  int or a list of ints) when given; `name` names the tensor in the error."""
  if expected_rank is not None:
    assert_rank(tensor, expected_rank, name)
  shape = tensor.shape.as_list()
  if None not in shape:
    return shape
  dyn_shape = tf.shape(tensor)
  return [dyn_shape[i] if dim is None else dim for i, dim in enumerate(shape)]


def reshape_to_matrix(input_tensor):
  """Reshapes a >= rank 2 tensor to a rank 2 tensor (i.e., a matrix)."""
  ndims = input_tensor.shape.ndims
  if ndims < 2:
    raise ValueError("Input tensor must have at least rank 2. Shape = %s" %
                     (input_tensor.shape))
  if ndims == 2:
    return input_tensor
  return tf.reshape(input_tensor, [-1, input_tensor.shape[-1]])


def reshape_from_matrix(output_tensor, orig_shape_list):
  """Reshapes a rank 2 tensor back to its original rank >= 2 tensor."""
  if len(orig_shape_list) == 2:
    return output_tensor
  width = get_shape_list(output_tensor)[-1]
  return tf.reshape(output_tensor, orig_shape_list[0:-1] + [width])


def assert_rank(tensor, expected_rank, name=None):
  """Raises ValueError unless `tensor` has rank `expected_rank` (an int or a
  list of ints); `name` names the tensor in the message."""
  if name is None:
    if not tf.executing_eagerly():
      name = getattr(tensor, "name", None)
    name = name or "tensor"
  expected = ({expected_rank} if isinstance(expected_rank, int) else
              set(expected_rank))
  actual_rank = tensor.shape.ndims
  if actual_rank not in expected:
    raise ValueError(
        "For the tensor `%s` in scope `%s`, the actual rank "
        "`%s` (shape = %s) is not equal to the expected rank `%s`" %
        (name, tf.get_current_name_scope(), actual_rank, str(tensor.shape),
         str(expected_rank)))


# ------------------------------------------------------------------------------
# The original's building-block functions. Their variables get the original
# names relative to the current variable scope in TF1 graph code (`reuse=`
# shares them); in eager code each call creates new ones (reusable weights are
# `BertModel`, `Dense` and `LayerNorm`).
# ------------------------------------------------------------------------------


def embedding_lookup(input_ids,
                     vocab_size,
                     embedding_size=128,
                     initializer_range=0.02,
                     word_embedding_name="word_embeddings",
                     use_one_hot_embeddings=False):
  """Looks up word embeddings for an id tensor [batch_size, seq_length].

  Returns (output [batch_size, seq_length, embedding_size], embedding_table);
  `use_one_hot_embeddings` uses a one-hot matmul instead of `tf.gather()`.
  """
  input_ids = tf.convert_to_tensor(input_ids)
  if input_ids.shape.ndims == 2:  # One id per position, as the original.
    input_ids = tf.expand_dims(input_ids, axis=[-1])
  embedding_table = create_variable(
      word_embedding_name, [vocab_size, embedding_size],
      create_initializer(initializer_range))
  flat_input_ids = tf.reshape(input_ids, [-1])
  if use_one_hot_embeddings:
    one_hot_input_ids = tf.one_hot(flat_input_ids, depth=vocab_size)
    output = tf.matmul(one_hot_input_ids, embedding_table)
  else:
    output = tf.gather(embedding_table, flat_input_ids)
  input_shape = get_shape_list(input_ids)
  output = tf.reshape(output,
                      input_shape[0:-1] + [input_shape[-1] * embedding_size])
  return (output, embedding_table)


def embedding_postprocessor(input_tensor,
                            use_token_type=False,
                            token_type_ids=None,
                            token_type_vocab_size=16,
                            token_type_embedding_name="token_type_embeddings",
                            use_position_embeddings=True,
                            position_embedding_name="position_embeddings",
                            initializer_range=0.02,
                            max_position_embeddings=512,
                            dropout_prob=0.1):
  """Adds token-type and position embeddings, then LayerNorm and dropout.

  Raises ValueError for `use_token_type` without `token_type_ids` or a
  sequence longer than `max_position_embeddings`.
  """
  input_shape = get_shape_list(input_tensor, expected_rank=3)
  batch_size, seq_length, width = input_shape
  output = input_tensor
  if use_token_type:
    if token_type_ids is None:
      raise ValueError("`token_type_ids` must be specified if "
                       "`use_token_type` is True.")
    token_type_table = create_variable(
        token_type_embedding_name, [token_type_vocab_size, width],
        create_initializer(initializer_range))
    flat_token_type_ids = tf.reshape(token_type_ids, [-1])
    one_hot_ids = tf.one_hot(flat_token_type_ids, depth=token_type_vocab_size)
    token_type_embeddings = tf.matmul(one_hot_ids, token_type_table)
    output += tf.reshape(token_type_embeddings,
                         [batch_size, seq_length, width])
  if use_position_embeddings:
    if isinstance(seq_length, int) and seq_length > max_position_embeddings:
      raise ValueError("The sequence length (%d) is longer than "
                       "max_position_embeddings (%d)" %
                       (seq_length, max_position_embeddings))
    full_position_embeddings = create_variable(
        position_embedding_name, [max_position_embeddings, width],
        create_initializer(initializer_range))
    position_embeddings = tf.slice(full_position_embeddings, [0, 0],
                                   [seq_length, -1])
    output += tf.expand_dims(position_embeddings, 0)
  norm = LayerNorm("LayerNorm", width)
  return dropout(norm(output), dropout_prob)


def attention_layer(from_tensor,
                    to_tensor,
                    attention_mask=None,
                    num_attention_heads=1,
                    size_per_head=512,
                    query_act=None,
                    key_act=None,
                    value_act=None,
                    attention_probs_dropout_prob=0.0,
                    initializer_range=0.02,
                    do_return_2d_tensor=False,
                    batch_size=None,
                    from_seq_length=None,
                    to_seq_length=None):
  """Multi-headed attention from `from_tensor` to `to_tensor`.

  The tensors are [batch_size, seq_length, width], or 2-D [batch_size *
  seq_length, width] with batch_size, from_seq_length and to_seq_length given.
  `attention_mask` [batch_size, from_seq_length, to_seq_length] is 1 where
  attending is allowed (-10000 is added to the other scores). Returns float
  [batch_size, from_seq_length, num_attention_heads * size_per_head], or its
  2-D form with `do_return_2d_tensor`.
  """
  from_shape = get_shape_list(from_tensor, expected_rank=[2, 3])
  to_shape = get_shape_list(to_tensor, expected_rank=[2, 3])
  if len(from_shape) != len(to_shape):
    raise ValueError(
        "The rank of `from_tensor` must match the rank of `to_tensor`.")
  if len(from_shape) == 3:
    batch_size, from_seq_length, to_seq_length = from_shape[:2] + to_shape[1:2]
  elif (batch_size is None or from_seq_length is None or
        to_seq_length is None):
    raise ValueError(
        "When passing in rank 2 tensors to attention_layer, the values "
        "for `batch_size`, `from_seq_length`, and `to_seq_length` "
        "must all be specified.")

  from_2d = reshape_to_matrix(from_tensor)
  to_2d = reshape_to_matrix(to_tensor)
  width = num_attention_heads * size_per_head
  init = create_initializer(initializer_range)
  query = Dense("query", from_shape[-1], width, activation=query_act,
                kernel_initializer=init)
  key = Dense("key", to_shape[-1], width, activation=key_act,
              kernel_initializer=init)
  value = Dense("value", to_shape[-1], width, activation=value_act,
                kernel_initializer=init)

  q = _split_heads(query(from_2d), num_attention_heads, size_per_head,
                   from_seq_length, 1)[0]
  k = _split_heads(key(to_2d), num_attention_heads, size_per_head,
                   to_seq_length, 1)[0]
  v = _split_heads(value(to_2d), num_attention_heads, size_per_head,
                   to_seq_length, 1)[0]
  probs = dropout(_attention_probs(q, k, _mask_adder(attention_mask),
                                   size_per_head), attention_probs_dropout_prob)
  context = tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3])
  if do_return_2d_tensor:
    return tf.reshape(context, [batch_size * from_seq_length, width])
  return tf.reshape(context, [batch_size, from_seq_length, width])


def _mask_adder(attention_mask):
  """-10000 where `attention_mask` [B, F, T] is 0, as [B, 1, F, T] (or 0.0)."""
  if attention_mask is None:
    return 0.0
  mask = tf.expand_dims(tf.cast(attention_mask, tf.float32), axis=[1])
  return (1.0 - mask) * -10000.0


def transformer_model(input_tensor,
                      attention_mask=None,
                      hidden_size=768,
                      num_hidden_layers=12,
                      num_attention_heads=12,
                      intermediate_size=3072,
                      intermediate_act_fn=gelu,
                      hidden_dropout_prob=0.1,
                      attention_probs_dropout_prob=0.1,
                      initializer_range=0.02,
                      do_return_all_layers=False):
  """The original Transformer encoder ("Attention is All You Need").

  `input_tensor` is float [batch_size, seq_length, hidden_size]; the mask as
  from `create_attention_mask_from_input_mask`. Inside
  `tf.variable_scope("bert/encoder")` the variables get a BERT checkpoint's
  names. Returns the final layer, or with `do_return_all_layers` the list of
  every layer's output.
  """
  if hidden_size % num_attention_heads != 0:
    raise ValueError(
        "The hidden size (%d) is not a multiple of the number of attention "
        "heads (%d)" % (hidden_size, num_attention_heads))
  input_shape = get_shape_list(input_tensor, expected_rank=3)
  seq_length, input_width = input_shape[1:]
  if input_width != hidden_size:
    raise ValueError("The width of the input tensor (%d) != hidden size (%d)" %
                     (input_width, hidden_size))
  # BertModel's layers, under names relative to the current variable scope.
  cfg = BertConfig(None, hidden_size, num_hidden_layers, num_attention_heads,
                   intermediate_size, hidden_act=intermediate_act_fn)
  init = create_initializer(initializer_range)
  adder = _mask_adder(attention_mask)
  prev_output = reshape_to_matrix(input_tensor)
  all_layer_outputs = []
  for layer_idx in range(num_hidden_layers):
    layer = _EncoderLayer("layer_%d" % layer_idx, cfg, init)
    prev_output = _LayerCall(layer, seq_length, tf.float32, hidden_dropout_prob,
                             attention_probs_dropout_prob, adder,
                             None)(prev_output)
    all_layer_outputs.append(prev_output)

  if do_return_all_layers:
    return [reshape_from_matrix(x, input_shape) for x in all_layer_outputs]
  return reshape_from_matrix(prev_output, input_shape)
