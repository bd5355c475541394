# coding=utf-8
"""The one training / evaluation / prediction loop, replacing TPUEstimator.

What the original scripts handed to `TPUEstimator` (devices, input, the loop,
checkpoints, summaries) is done here once, on `tf.distribute` and `tf.data`:
`get_strategy`, `train` (resumable, with the input position), `evaluate` and
`predict`.

A *task* (defined by each script) tells the loop what to compute:

  create_model()                          -> tf.Module with named_variables()
  compute_loss(model, features, training) -> (loss, {name: scalar} to log)
  eval_metrics(model, features)           -> {name: (numerator, denominator)}
  predict(model, features)                -> {name: [batch, ...] tensor}

An `input_fn(params)` returns a batched `tf.data.Dataset` of feature dicts, where
`params["batch_size"]` is the per-replica batch and `params["input_context"]` a
`tf.distribute.InputContext` (or None).
"""

import collections
import itertools
import json
import os
import re
import sys
import time

from absl import flags
from absl import logging
import numpy as np

# TensorFlow's BFC CPU allocator reuses large buffers where its default one
# page-faults fresh zeroed pages for each (BERT-Base inference +13-18 % on a
# 2-core CPU: docs/bench.md). Read at the first op; =false keeps the default.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import tensorflow as tf  # pylint: disable=g-import-not-at-top



def _not_tensorflow_info(record):
  """Drops TensorFlow's own Python INFO lines (e.g. the saver's "Sharding
  callback duration"); warnings pass."""
  return (record.levelno >= 30 or logging.level_debug() or
          os.sep + "tensorflow" + os.sep not in record.pathname)


tf.get_logger().setLevel("WARNING")
logging.get_absl_logger().addFilter(_not_tensorflow_info)

import checkpoints
import common
import modeling
import optimization
from tensorflow.core.framework import summary_pb2

# What TensorBoard's scalar plugin stamps on its summaries (data class SCALAR).
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()


UserError = common.UserError
main_wrapper = common.main_wrapper


# ------------------------------------------------------------------------------------
# Flags shared by every script.
# ------------------------------------------------------------------------------------


def define_runtime_flags(iterations_per_loop=True, save_checkpoints_steps=True):
  """Defines the original TPU flags plus the new runtime flags of this project."""
  flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
  flags.DEFINE_string(
      "tpu_name", None,
      "The Cloud TPU to use for training. This should be either the name used when "
      "creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.")
  flags.DEFINE_string(
      "tpu_zone", None,
      "[Optional] GCE zone where the Cloud TPU is located in. If not specified, we "
      "will attempt to automatically detect the GCE project from metadata.")
  flags.DEFINE_string(
      "gcp_project", None,
      "[Optional] Project name for the Cloud TPU-enabled project. If not specified, "
      "we will attempt to automatically detect the GCE project from metadata.")
  flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")
  flags.DEFINE_integer(
      "num_tpu_cores", 8,
      "Only used if `use_tpu` is True. Total number of TPU cores to use.")
  if iterations_per_loop:
    flags.DEFINE_integer(
        "iterations_per_loop", 1000,
        "How many steps to make in each estimator call (here: tf.function).")
  if save_checkpoints_steps:
    flags.DEFINE_integer("save_checkpoints_steps", 1000,
                         "How often to save the model checkpoint.")

  # New in this project; the defaults keep the original behaviour.
  flags.DEFINE_enum(
      "mixed_precision", "fp32", ["fp32", "bf16", "fp16"],
      "Compute dtype. bf16/fp16 compute with float32 variables and checkpoints; "
      "fp16 uses dynamic loss scaling.")
  flags.DEFINE_bool("use_xla", False,
                    "Compile the train/eval/predict steps with XLA (jit_compile).")
  flags.DEFINE_bool(
      "xla_optimizer_update", None,
      "Compile only the optimizer update with XLA (implied by --use_xla; "
      "values may differ in the last bit). Unset: on where it measured faster.")
  flags.DEFINE_integer(
      "gradient_accumulation_steps", 1,
      "Accumulate the gradients of this many micro-batches of each global "
      "batch before one optimizer step (same math, less memory).")
  flags.DEFINE_integer("seed", None,
                       "Random seed for initialisation, dropout and data order.")
  flags.DEFINE_bool("deterministic", False,
                    "Use deterministic TensorFlow ops (bitwise reproducible runs).")
  flags.DEFINE_integer("keep_checkpoint_max", 5,
                       "How many recent checkpoints to keep (0: all).")
  flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"],
                    "adamw: the original AdamWeightDecayOptimizer; lamb: LAMB.")
  flags.DEFINE_bool("adam_bias_correction", False,
                    "Fix: apply Adam's bias correction (the original has none).")
  flags.DEFINE_bool(
      "continuous_warmup", False,
      "Fix: start the decay at the end of warmup (the original: at step 0).")
  flags.DEFINE_integer(
      "log_steps", 100,
      "Print a progress line (and write summaries) at least every this many "
      "steps on CPU/GPU; on TPU once per iterations_per_loop.")
  flags.DEFINE_bool("recompute", False,
                    "Recompute activations in the backward pass (less memory).")
  flags.DEFINE_bool(
      "skip_case_check", False,
      "Skip checking --do_lower_case against a released checkpoint's name.")
  flags.DEFINE_bool(
      "verbose_init", False,
      "Log one line per loaded variable (the original's '*INIT_FROM_CKPT*').")
  flags.DEFINE_bool(
      "fused_blocks", None,
      "Run each encoder layer's attention core and GELU as XLA-compiled fused "
      "kernels (same math up to float rounding). Unset: what measured faster "
      "on this kind of CPU (on AVX-512 also the XLA LayerNorm epilogues, "
      "with the fused blocks in training steps only); --nofused_blocks forces "
      "op by op.")
  flags.DEFINE_bool(
      "constant_kernels", None,
      "Predicting and evaluating, trace the matmul kernels into the step as "
      "constants of the compute dtype (same values; oneDNN then uses its "
      "blocked kernels with the weights reordered once). Unset: on where it "
      "measured faster (AVX-512 CPUs, below fp32, without --use_xla).")
  _use_grouped_help()


class _GroupedHelpFlag(flags.BooleanFlag):
  """`--help`: every flag the script accepts, grouped by the module defining
  it, exit status 0 (absl's lists only the main module's and exits 1)."""

  def __init__(self, name, short_name):
    super().__init__(name, False, "show this help", short_name=short_name,
                     allow_hide_cpp=True)

  def parse(self, argument):
    if not self._parse(argument):
      return
    main = sys.argv[0]
    doc = (getattr(sys.modules.get("__main__"), "__doc__", None) or "").strip()
    if doc:
      print(doc)
    others = sorted(m for m in flags.FLAGS.flags_by_module_dict()
                    if m not in (main, __name__) and
                    not m.startswith(("absl", "tensorflow")))
    titles = {main: "Flags of %s" % os.path.basename(main),
              __name__: "Runtime flags (devices, checkpoints, speed; shared "
                        "by every script)"}
    for module in [main] + others + [__name__]:
      text = flags.FLAGS.module_help(module)
      if text:
        body = text.lstrip("\n").partition("\n")[2]
        print("\n%s:\n%s" % (titles.get(module, "Flags of %s.py" % module),
                              body))
    print("\n--helpfull also lists absl's and TensorFlow's own flags.")
    sys.stdout.flush()
    sys.exit(0)


def _use_grouped_help():
  from absl import app  # pylint: disable=g-import-not-at-top
  app.define_help_flags()
  if isinstance(flags.FLAGS["help"], _GroupedHelpFlag):
    return
  for name, short_name in (("help", "?"), ("helpshort", None)):
    delattr(flags.FLAGS, name)
    if short_name and short_name in flags.FLAGS:
      delattr(flags.FLAGS, short_name)
    flags.DEFINE_flag(_GroupedHelpFlag(name, short_name))


class RunConfig(object):
  """The flags of `define_runtime_flags` (same names and defaults), plus
  `strategy` (a tf.distribute strategy to impose)."""

  DEFAULTS = collections.OrderedDict([
      ("use_tpu", False), ("tpu_name", None), ("tpu_zone", None),
      ("gcp_project", None), ("master", None), ("num_tpu_cores", 8),
      ("iterations_per_loop", 1000), ("save_checkpoints_steps", 1000),
      ("keep_checkpoint_max", 5), ("mixed_precision", "fp32"),
      ("use_xla", False), ("xla_optimizer_update", None),
      ("gradient_accumulation_steps", 1), ("seed", None),
      ("deterministic", False), ("optimizer", "adamw"),
      ("adam_bias_correction", False), ("continuous_warmup", False),
      ("log_steps", 100), ("recompute", False), ("fused_blocks", None),
      ("constant_kernels", None), ("strategy", None)])

  def __init__(self, output_dir, **settings):
    unknown = sorted(set(settings) - set(self.DEFAULTS))
    if unknown:
      raise TypeError("RunConfig has no setting %s" % ", ".join(unknown))
    self.output_dir = output_dir
    for name, default in self.DEFAULTS.items():
      setattr(self, name, settings.get(name, default))

  @classmethod
  def from_flags(cls, flag_values, output_dir=None, **overrides):
    """Builds a RunConfig from parsed absl flags (missing flags keep defaults)."""
    kwargs = {name: flag_values[name].value for name in cls.DEFAULTS
              if name in flag_values}
    if output_dir is None and "output_dir" in flag_values:
      output_dir = flag_values["output_dir"].value
    if "verbose_init" in flag_values:
      checkpoints.set_verbose_init(flag_values["verbose_init"].value)
    kwargs.update(overrides)
    return cls(output_dir, **kwargs)

  @property
  def compute_dtype(self):
    return {"fp32": tf.float32, "bf16": tf.bfloat16,
            "fp16": tf.float16}[self.mixed_precision]

  @property
  def use_one_hot_embeddings(self):
    # As in the original: the one-hot embedding matmul is the TPU path.
    return bool(self.use_tpu)

  def setting(self, name):
    """A setting's value, with None (unset) resolved by `fastest_settings`."""
    value = getattr(self, name)
    if value is None:
      value = fastest_settings(self.use_tpu)[name]
      if (name, value) not in _LOGGED_AUTO:
        _LOGGED_AUTO.add((name, value))
        logging.info("--%s unset: %s (the faster on this %s CPU)", name,
                     {True: "on", False: "off", "epilogues": "XLA epilogues, "
                      "and the fused blocks in training steps",
                      "below_fp32": "on below fp32 without --use_xla"}[value],
                     cpu_kind())
      if value == "below_fp32":
        value = self.compute_dtype != tf.float32 and not self.use_xla
    return value if value == "epilogues" else bool(value)

  @property
  def encoder_options(self):
    """The `modeling.EncoderOptions` these flags select."""
    return modeling.EncoderOptions(self.use_one_hot_embeddings,
                                   self.compute_dtype, self.recompute,
                                   self.setting("fused_blocks"))


# ------------------------------------------------------------------------------------
# The settings that are the same math up to float rounding default, when left
# unset, to what measured faster on this kind of machine (bench/, docs/bench.md).
# ------------------------------------------------------------------------------------

# CPU kind -> settings; "epilogues" = the XLA epilogues (modeling.py) in every
# call, with the fused blocks in training steps. Measured with
# bench/bench_ab.py (in-process, interleaved; ratio of medians, fused / op by
# op) and bench/bench_ours.py:
# * avx2 (2-core AMD EPYC, 26 Nov): --fused_blocks 1.13-1.36x on every Mini row
#   (1.22x Base W1); --xla_optimizer_update faster on W2/W3 (docs/bench.md).
#   The epilogues came later and were not measured there; the AVX-512 host
#   restricted to AVX2 kernels favours them (1.02-1.12x on fp32 rows) but
#   does not reproduce that host's fused / op-by-op ratios, so no switch.
# * avx512 (2-core Xeon, AVX512_BF16 + AMX, 5 Dec): --fused_blocks 1.04x Mini W2
#   fp32, 1.19x Mini W2 bf16, 1.03x Mini W3, 1.04x Base W2 fp32, but 0.92x Mini
#   W1 fp32, 0.83x Mini W1 bf16, 0.94x Base W1 fp32, 0.86x Base W1 bf16;
#   --xla_optimizer_update 1.07x Mini W2 and W3. The XLA epilogues, predicting
#   against op by op: W1 bf16 1.29x Mini, 1.12x Base, fp32 1.01-1.02x;
#   training against the fused blocks alone: W2 1.08x Mini fp32, 1.22x Mini
#   bf16, 1.04x Base fp32, W3 1.06x Mini. --constant_kernels (prediction and
#   evaluation), on / off: W1 bf16 1.46x Mini, 1.51x Base; fp32 1.01x Mini,
#   0.96x Base, so only below fp32 ("below_fp32"; not under --use_xla).
#   6 Dec: the epilogues' training attention core with TF's batched matmuls
#   against the all-XLA one: W2 bf16 1.11x Mini, 1.12x Base (modeling.py).
# Other CPUs, GPUs and TPUs were not measured: the op-by-op path.
_FASTEST = {
    "avx2": dict(fused_blocks=True, xla_optimizer_update=True,
                 constant_kernels=False),
    "avx512": dict(fused_blocks="epilogues", xla_optimizer_update=True,
                   constant_kernels="below_fp32"),
}
_OP_BY_OP = dict(fused_blocks=False, xla_optimizer_update=False,
                 constant_kernels=False)
_LOGGED_AUTO = set()


def cpu_kind():
  """'avx512' (AVX-512F), 'avx2', or 'other': the x86 feature level of this
  host's CPU, from /proc/cpuinfo; the environment's BERT_CPU_KIND overrides."""
  kind = os.environ.get("BERT_CPU_KIND")
  if kind:
    return kind
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          cpu_flags = set(line.split(":", 1)[1].split())
          return ("avx512" if "avx512f" in cpu_flags else
                  "avx2" if "avx2" in cpu_flags else "other")
  except OSError:
    pass
  return "other"


def fastest_settings(use_tpu=False):
  """The defaults of `fused_blocks`, `xla_optimizer_update` and
  `constant_kernels` here."""
  if use_tpu or tf.config.list_physical_devices("GPU"):
    return dict(_OP_BY_OP)
  return dict(_FASTEST.get(cpu_kind(), _OP_BY_OP))


def setup_determinism(cfg):
  """Seeds TF's global RNG and switches on deterministic ops when asked."""
  if cfg.seed is not None:
    tf.random.set_seed(cfg.seed)
  if cfg.deterministic:
    tf.config.experimental.enable_op_determinism()


# ------------------------------------------------------------------------------------
# Devices.
# ------------------------------------------------------------------------------------

_STRATEGY_CACHE = {}


def _worker_count_from_tf_config():
  try:
    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
  except ValueError as e:
    raise UserError(f"TF_CONFIG is not valid JSON: {e}")
  cluster = tf_config.get("cluster", {})
  return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))


def get_strategy(cfg):
  """TPU (--use_tpu), several workers (TF_CONFIG) or GPUs, or one device."""
  if cfg.strategy is not None:
    return cfg.strategy
  key = (cfg.use_tpu, cfg.tpu_name, cfg.tpu_zone, cfg.gcp_project, cfg.master)
  if key in _STRATEGY_CACHE:
    return _STRATEGY_CACHE[key]

  if cfg.use_tpu:
    tpu = cfg.tpu_name or cfg.master or ""
    try:
      resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
          tpu=tpu, zone=cfg.tpu_zone, project=cfg.gcp_project)
      if tpu not in ("", "local"):
        tf.config.experimental_connect_to_cluster(resolver)
      tf.tpu.experimental.initialize_tpu_system(resolver)
      strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # pylint: disable=broad-except
      reason = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
      raise UserError(
          f"--use_tpu=True but no TPU could be reached (tpu_name={cfg.tpu_name!r}, "
          f"tpu_zone={cfg.tpu_zone!r}, gcp_project={cfg.gcp_project!r}, "
          f"master={cfg.master!r}): {reason}. Run on a Cloud TPU VM (tpu_name "
          "'local' or unset) or pass the name of a Cloud TPU reachable from this "
          "host; files must then be on gs://.")
    if strategy.num_replicas_in_sync != cfg.num_tpu_cores:
      logging.warning("--num_tpu_cores=%d but the TPU has %d cores; using %d.",
                      cfg.num_tpu_cores, strategy.num_replicas_in_sync,
                      strategy.num_replicas_in_sync)
  elif _worker_count_from_tf_config() > 1:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif len(tf.config.list_logical_devices("GPU")) > 1:
    strategy = tf.distribute.MirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  _STRATEGY_CACHE[key] = strategy
  return strategy


def _is_chief(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == "chief" or (task_type in (None, "worker") and task_id == 0
                                  and "chief" not in resolver.cluster_spec().jobs)


def _per_replica_batch(global_batch, strategy, what):
  replicas = strategy.num_replicas_in_sync
  if global_batch % replicas:
    raise UserError(f"--{what}={global_batch} must be divisible by the number of "
                    f"replicas ({replicas}).")
  return global_batch // replicas


# ------------------------------------------------------------------------------------
# Model state: weights, optimizer slots and global_step under their original names.
# ------------------------------------------------------------------------------------


class _TrainState(object):
  """The model, its optimizer and `global_step`, built under the strategy scope."""

  def __init__(self, cfg, task, strategy, learning_rate, num_train_steps,
               num_warmup_steps):
    with strategy.scope():
      self.model = task.create_model()
      self.named_weights = collections.OrderedDict(self.model.named_variables())
      self.optimizer, self.schedule = optimization.create_optimizer(
          None, learning_rate, num_train_steps, num_warmup_steps, cfg.use_tpu,
          optimizer=cfg.optimizer,
          # None keeps each optimizer's default (AdamW: none, LAMB: on).
          bias_correction=cfg.adam_bias_correction or None,
          continuous_warmup=cfg.continuous_warmup,
          jit_update=bool(cfg.use_xla or cfg.setting("xla_optimizer_update")))
      self.optimizer.build(self.named_weights)
      self.global_step = tf.Variable(
          0, dtype=tf.int64, trainable=False, name="global_step",
          aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def named_state(self):
    """Every tensor of a training checkpoint, by its original name."""
    state = collections.OrderedDict(self.named_weights)
    state.update(self.optimizer.named_slots())
    state["global_step"] = self.global_step
    return state


def load_model(cfg, task, checkpoint_path=None, init_checkpoint=None):
  """`task`'s model with weights from `checkpoint_path`, else the latest
  checkpoint in `cfg.output_dir`, else `init_checkpoint`: (model, global_step,
  checkpoint prefix or None), `model.load_report` the checkpoints.LoadReport."""
  with get_strategy(cfg).scope():
    model = task.create_model()
  path = checkpoint_path
  if path is None and cfg.output_dir:
    path = checkpoints.latest_checkpoint(cfg.output_dir)
  step = 0
  if path:
    path = checkpoints.normalize_checkpoint_path(path)
    step = _global_step_of(path)
  elif init_checkpoint:
    path = checkpoints.normalize_checkpoint_path(init_checkpoint)
  model.load_report = None
  if path:
    model.load_report = checkpoints.init_from_checkpoint(
        collections.OrderedDict(model.named_variables()), path)
  else:
    logging.warning("No checkpoint in output_dir and no init_checkpoint: using "
                    "randomly initialised weights.")
  return model, step, path


def _global_step_of(prefix):
  reader = tf.train.load_checkpoint(prefix)
  if reader.has_tensor("global_step"):
    return int(reader.get_tensor("global_step"))
  return 0


def _check_resume_compatible(prefix, named_state):
  """Stops with a clear message when output_dir holds another model's checkpoints."""
  in_ckpt = dict(checkpoints.list_variables(prefix))
  problems = []
  for name, var in named_state.items():
    if name not in in_ckpt:
      problems.append(f"{name} missing")
    elif list(in_ckpt[name]) != var.shape.as_list():
      problems.append(f"{name} is {list(in_ckpt[name])} there but "
                      f"{var.shape.as_list()} here")
    if len(problems) >= 3:
      break
  if problems:
    raise UserError(
        f"output_dir {os.path.dirname(prefix)} holds checkpoint {prefix} of another "
        f"model or setup ({'; '.join(problems)}): it was written with a different "
        "bert_config/task/optimizer. Use a new --output_dir, or delete the old "
        "checkpoints to start over.")


def _script_module_name(depth):
  """absl's name for the module `depth` frames up (the script's path for
  __main__), so that a flag defined here for it is listed under it in --help."""
  name = sys._getframe(depth + 1).f_globals.get("__name__")  # pylint: disable=protected-access
  return sys.argv[0] if name == "__main__" else name


def define_flag(define, name, default, help_text, module_name=None):
  """Defines a flag (owned by the calling script) unless another script
  imported in this process did."""
  if name not in flags.FLAGS:
    define(name, default, help_text,
           module_name=module_name or _script_module_name(1))


def define_finetuning_flags(max_seq_length_help=None, skip=()):
  """The original fine-tuning scripts' shared flags (owned by the calling
  script) but those named in `skip`, then the runtime flags; idempotent."""
  module_name = _script_module_name(1)

  def d(define, name, *args):
    if name not in skip:
      define_flag(define, name, *args, module_name=module_name)

  d(flags.DEFINE_string, "bert_config_file", None,
    "The config json file corresponding to the pre-trained BERT model. "
    "This specifies the model architecture.")
  d(flags.DEFINE_string, "vocab_file", None,
    "The vocabulary file that the BERT model was trained on.")
  d(flags.DEFINE_string, "output_dir", None,
    "The output directory where the model checkpoints will be written.")
  d(flags.DEFINE_string, "init_checkpoint", None,
    "Initial checkpoint (usually from a pre-trained BERT model).")
  d(flags.DEFINE_bool, "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased "
    "models and False for cased models.")
  d(flags.DEFINE_integer, "max_seq_length", 128, max_seq_length_help or (
      "The maximum total input sequence length after WordPiece tokenization. "
      "Sequences longer than this will be truncated, and sequences shorter "
      "than this will be padded."))
  d(flags.DEFINE_bool, "do_train", False, "Whether to run training.")
  d(flags.DEFINE_bool, "do_eval", False, "Whether to run eval on the dev set.")
  d(flags.DEFINE_bool, "do_predict", False,
    "Whether to run the model in inference mode on the test set.")
  d(flags.DEFINE_integer, "train_batch_size", 32,
    "Total batch size for training.")
  d(flags.DEFINE_integer, "eval_batch_size", 8, "Total batch size for eval.")
  d(flags.DEFINE_integer, "predict_batch_size", 8,
    "Total batch size for predict.")
  d(flags.DEFINE_float, "learning_rate", 5e-5,
    "The initial learning rate for Adam.")
  d(flags.DEFINE_float, "num_train_epochs", 3.0,
    "Total number of training epochs to perform.")
  d(flags.DEFINE_float, "warmup_proportion", 0.1,
    "Proportion of training to perform linear learning rate warmup for. "
    "E.g., 0.1 = 10% of training.")
  if "use_tpu" not in flags.FLAGS:
    define_runtime_flags()


# ------------------------------------------------------------------------------------
# Training.
# ------------------------------------------------------------------------------------


class _Progress(common.Progress):
  """Progress lines (steps/s, examples/s, ETA) and TensorBoard scalars."""

  def __init__(self, writer, first_step, last_step, batch_size):
    super().__init__(last_step, start_done=first_step)
    self.writer = writer
    self.batch_size = batch_size

  def report(self, step, scalars):
    steps_per_sec, eta = self.measure(step)
    examples_per_sec = steps_per_sec * self.batch_size
    parts = " ".join(f"{k}={_fmt(v)}" for k, v in scalars.items())
    logging.info("step %d/%d %s | %.3f steps/s, %.1f examples/s, ETA %s", step,
                 self.total, parts, steps_per_sec, examples_per_sec,
                 common.format_duration(eta))
    if self.writer is not None:
      write_scalars(self.writer, step, dict(scalars, **{
          "global_step/sec": steps_per_sec, "examples/sec": examples_per_sec}))


def write_scalars(writer, step, scalars):
  """TensorBoard scalars, as tensorboard's own `scalar` writes them."""
  with writer.as_default(step=step):
    for name, value in scalars.items():
      tf.summary.write(name, tf.constant(float(value), tf.float32),
                       metadata=_SCALAR_METADATA)
  writer.flush()


def _fmt(v):
  v = float(v)
  return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


@tf.autograph.experimental.do_not_convert
def _split_micro_batches(features, num_micro):
  """[B, ...] features -> list of num_micro dicts of [B/num_micro, ...]."""
  pieces = {k: tf.split(t, num_micro, axis=0) for k, t in features.items()}
  return [{k: p[i] for k, p in pieces.items()} for i in range(num_micro)]


class _Trainer(object):
  """Builds the step functions for one training run."""

  def __init__(self, cfg, task, strategy, state, per_replica_batch=None):
    self.cfg = cfg
    self.task = task
    self.strategy = strategy
    self.state = state
    self.per_replica_batch = per_replica_batch
    self.weights = list(state.named_weights.values())
    self.fp16 = cfg.mixed_precision == "fp16"
    if self.fp16:
      with strategy.scope():
        self.loss_scale = tf.Variable(
            2.0 ** 15, trainable=False, dtype=tf.float32,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.good_steps = tf.Variable(
            0, trainable=False, dtype=tf.int64,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.gradients = tf.function(self._gradients_impl,
                                 jit_compile=bool(cfg.use_xla))
    self.train_loop = tf.function(self._train_loop)

  def _gradients_impl(self, features):
    """Loss and (unclipped) gradients of one micro-batch on one replica."""
    with tf.GradientTape() as tape:
      loss, logs = self.task.compute_loss(self.state.model, features, True)
      scaled = loss * self.loss_scale if self.fp16 else loss
    grads = tape.gradient(scaled, self.weights)
    # A gathered embedding's gradient stays an IndexedSlices on one replica:
    # the original's clip_by_global_norm measured its values (repeated ids
    # counted separately) and the optimizer densifies it. Summing replicas or
    # micro-batches densifies it first.
    dense = (self.strategy.num_replicas_in_sync > 1 or
             self.cfg.gradient_accumulation_steps > 1)
    grads = [tf.zeros_like(w) if g is None else
             (tf.convert_to_tensor(g) if dense else g)
             for g, w in zip(grads, self.weights)]
    if self.fp16:
      inv = 1.0 / self.loss_scale
      grads = [tf.IndexedSlices(g.values * inv, g.indices, g.dense_shape)
               if isinstance(g, tf.IndexedSlices) else g * inv for g in grads]
    return loss, logs, grads

  def _replica_step(self, features):
    accum = self.cfg.gradient_accumulation_steps
    if accum == 1:
      loss, logs, grads = self.gradients(features)
    else:
      micro_batches = _split_micro_batches(features, accum)
      loss, logs, grads = self.gradients(micro_batches[0])
      for micro in micro_batches[1:]:
        m_loss, m_logs, m_grads = self.gradients(micro)
        loss += m_loss
        logs = {k: logs[k] + v for k, v in m_logs.items()}
        grads = [a + g for a, g in zip(grads, m_grads)]
      loss = loss / accum
      logs = {k: v / accum for k, v in logs.items()}
      grads = [g / accum for g in grads]

    ctx = tf.distribute.get_replica_context()
    if self.strategy.num_replicas_in_sync > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
      loss, logs = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, (loss, logs))
    grads, global_norm = tf.clip_by_global_norm(grads, 1.0)
    finite = tf.math.is_finite(global_norm)
    lr = self.state.schedule(self.state.global_step)
    ctx.merge_call(self._apply, args=(grads, finite))
    logs = dict(logs, loss=loss, learning_rate=lr, global_norm=global_norm)
    # A non-finite loss (or, outside fp16, a non-finite gradient) stops training.
    ok = tf.math.is_finite(loss)
    return logs, (ok if self.fp16 else tf.logical_and(ok, finite))

  def _apply(self, strategy, grads, finite):
    """Cross-replica: the optimizer update and the global_step increment."""
    state = self.state
    # All replicas hold the same all-reduced values: the first one decides.
    finite = strategy.experimental_local_results(finite)[0]
    lr = state.schedule(state.global_step)

    def apply():
      state.optimizer.apply_gradients(grads, state.named_weights,
                                      learning_rate=lr,
                                      global_step=state.global_step)
      return tf.constant(True)

    tf.cond(finite, apply, lambda: tf.constant(False))
    if self.fp16:
      # Dynamic loss scaling: skip the update on overflow and halve the scale;
      # double it after 2000 good steps in a row.
      self.good_steps.assign(tf.where(finite, self.good_steps + 1, 0))
      grow = self.good_steps >= 2000
      self.loss_scale.assign(
          tf.where(finite, tf.where(grow, self.loss_scale * 2.0, self.loss_scale),
                   tf.maximum(self.loss_scale / 2.0, 1.0)))
      self.good_steps.assign(tf.where(grow, tf.zeros_like(self.good_steps),
                                      self.good_steps))
    state.global_step.assign_add(1)

  @property
  def model(self):
    return self.state.model

  def make_iterator(self, input_fn):
    """An iterator over `input_fn`'s dataset, distributed as `train` does."""
    return iter(_distribute(self.strategy, input_fn, self.per_replica_batch))

  def run_steps(self, iterator, num_steps=1, last_saved=None):
    """Runs `num_steps` training steps in one call; returns the last logs
    (UserError when the loss or the gradient norm became NaN/Inf)."""
    logs, ok = self.train_loop(iterator, tf.constant(num_steps, tf.int32))
    if not bool(ok):
      step = int(self.state.global_step.numpy()) - 1
      raise UserError(
          f"loss became NaN/Inf at step {step}; training stopped and the last "
          f"good checkpoint ({last_saved or 'none'}) is kept. Likely causes: a "
          "learning rate too high; token ids >= vocab_size (vocab.txt larger "
          "than vocab_size in bert_config.json, or data made with another "
          "vocab); fp16 overflow (try --mixed_precision=bf16 or fp32).")
    return logs

  def _one_step(self, iterator):
    per_replica_logs, per_replica_ok = self.strategy.run(
        self._replica_step, args=(next(iterator),))
    logs = {k: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica_logs.items()}
    ok = tf.reduce_all(tf.stack(
        self.strategy.experimental_local_results(per_replica_ok)))
    return logs, ok

  def _train_loop(self, iterator, num_steps):
    """Runs up to `num_steps` steps; stops early at the first non-finite loss."""
    logs, ok = self._one_step(iterator)
    for _ in tf.range(num_steps - 1):
      if not ok:
        break
      logs, ok = self._one_step(iterator)
    return logs, ok


def build_trainer(cfg, task, learning_rate, num_train_steps, num_warmup_steps,
                  train_batch_size=32):
  """The training step that `train` runs, without checkpoints or summaries
  (for benchmarks, tests and custom loops):

      trainer = runner.build_trainer(cfg, task, 1e-4, 1000, 100, 32)
      logs = trainer.run_steps(trainer.make_iterator(input_fn), 10)

  The trainer also has `.model`, `.strategy` and `.state` (`named_weights`,
  `optimizer`, `global_step`).
  """
  setup_determinism(cfg)
  strategy = get_strategy(cfg)
  per_replica = _per_replica_batch(train_batch_size, strategy, "train_batch_size")
  accum = cfg.gradient_accumulation_steps
  if accum < 1 or per_replica % accum:
    raise UserError(
        f"--gradient_accumulation_steps={accum} must divide the per-replica batch "
        f"({per_replica} = train_batch_size {train_batch_size} / "
        f"{strategy.num_replicas_in_sync} replicas).")
  state = _TrainState(cfg, task, strategy, learning_rate, num_train_steps,
                      num_warmup_steps)
  return _Trainer(cfg, task, strategy, state, per_replica)


def with_train_args(task, init_checkpoint, learning_rate, num_train_steps,
                    num_warmup_steps):
  """What an original `model_fn_builder` gives in TF2 (no tf.estimator): the
  task, with the loop's arguments in `task.train_args`:

      task = run_classifier.model_fn_builder(...)
      runner.train(cfg, task, input_fn, train_batch_size=..., **task.train_args)
  """
  task.train_args = dict(init_checkpoint=init_checkpoint,
                         learning_rate=learning_rate,
                         num_train_steps=num_train_steps,
                         num_warmup_steps=num_warmup_steps)
  return task


def epoch_steps(num_examples, train_batch_size, num_train_epochs,
                warmup_proportion, what="training examples"):
  """(num_train_steps, num_warmup_steps) for epochs over `num_examples`, as the
  original computed them; one clear line when that gives no step."""
  if train_batch_size < 1:
    raise UserError("--train_batch_size=%d must be at least 1." %
                    train_batch_size)
  num_train_steps = int(num_examples / train_batch_size * num_train_epochs)
  if num_train_steps < 1:
    raise UserError(
        "%d %s / --train_batch_size=%d * --num_train_epochs=%s gives 0 "
        "training steps: lower the batch size, train more epochs or add data."
        % (num_examples, what, train_batch_size, num_train_epochs))
  return num_train_steps, int(num_train_steps * warmup_proportion)


def check_training_args(train_batch_size, learning_rate, num_train_steps):
  """One line for training flags that cannot train (checked before any work)."""
  if train_batch_size is None or train_batch_size < 1:
    raise UserError("--train_batch_size=%s must be at least 1." %
                    train_batch_size)
  if learning_rate is None or learning_rate < 0:
    raise UserError(
        "--learning_rate=%s is negative: that would climb the loss (gradient "
        "ascent). Pass a positive rate, e.g. 5e-5 (fine-tuning) or 1e-4 "
        "(pre-training)." % learning_rate)
  if learning_rate == 0:
    logging.warning("--learning_rate=0: the weights will not change.")
  if num_train_steps is None or num_train_steps < 1:
    raise UserError("--num_train_steps=%s must be at least 1." %
                    num_train_steps)


def prepare_output_dir(path, flag="output_dir"):
  """Creates the output directory `path` (call it before any long work); one
  line if it cannot be written."""
  if not path:
    raise UserError(f"--{flag} is required.")
  if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
    raise UserError(f"--{flag}={path} is a file, not a directory: pass a "
                    "directory (it is created if missing).")
  try:
    tf.io.gfile.makedirs(path)
  except (tf.errors.OpError, OSError) as e:
    raise UserError(f"--{flag}={path}: cannot create the directory "
                    f"({common.one_line(getattr(e, 'message', e))}): pass a "
                    "directory you can write to.") from None
  if not common.is_remote(path) and not os.access(path, os.W_OK | os.X_OK):
    raise UserError(f"--{flag}={path} is not writable: pass a directory you "
                    "can write to.")
  return path


def _record_count(path):
  """The number of records of TFRecord file `path`, from their headers."""
  count, offset = 0, 0
  with tf.io.gfile.GFile(path, "rb") as f:
    size = f.size()
    while offset < size:
      f.seek(offset)
      header = f.read(8)
      # length, its CRC, data, the data's CRC
      offset += 8 + 4 + int.from_bytes(header, "little") + 4
      if len(header) < 8 or offset > size:
        raise UserError(
            f"{path} is truncated or is not a TFRecord file (it ends inside "
            f"record {count + 1}): regenerate it (an interrupted copy or write "
            "leaves such files).")
      count += 1
  return count


def check_tfrecords(paths, flag="input_file"):
  """Checks, before any work, that the TFRecord files `paths` are complete and
  hold records (else an empty input repeats forever, a truncated one fails
  mid-run); returns the number of records."""
  total = 0
  for path in paths:
    if not tf.io.gfile.exists(path):
      raise UserError(f"--{flag}: {path} does not exist.")
    try:
      count = _record_count(path)
    except (tf.errors.OpError, OSError) as e:
      raise UserError(f"--{flag}: cannot read {path}: "
                      f"{common.one_line(getattr(e, 'message', e))}") from None
    if not count:
      logging.warning("--%s: %s holds no records.", flag, path)
    total += count
  if not total:
    raise UserError(
        f"--{flag}: {', '.join(paths)} hold{'s' if len(paths) == 1 else ''} no "
        "records (an empty file, e.g. create_pretraining_data.py on an empty "
        "corpus): there is nothing to read.")
  return total


def _data_loss_error(e):
  """A TFRecord read failure (tf.errors.DataLossError) as one line."""
  message = common.one_line(getattr(e, "message", e))
  message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
  message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message)
  return UserError(f"an input file is truncated or corrupt ({message}): "
                   "regenerate it.")


def train(cfg, task, input_fn, num_train_steps, num_warmup_steps, learning_rate,
          init_checkpoint=None, train_batch_size=32, on_checkpoint=None):
  """Trains `task` to `num_train_steps`, resuming from `cfg.output_dir` (else
  from `init_checkpoint`), on the global batch `train_batch_size` of the
  repeated `input_fn`; `on_checkpoint(step, prefix)` runs after each save.
  Returns the final global step."""
  check_training_args(train_batch_size, learning_rate, num_train_steps)
  prepare_output_dir(cfg.output_dir)
  trainer = build_trainer(cfg, task, learning_rate, num_train_steps,
                          num_warmup_steps, train_batch_size)
  strategy, state = trainer.strategy, trainer.state
  chief = _is_chief(strategy)
  per_replica = trainer.per_replica_batch
  accum = cfg.gradient_accumulation_steps
  named_state = state.named_state()

  latest = checkpoints.latest_checkpoint(cfg.output_dir)
  resume_step = _global_step_of(latest) if latest else 0
  iterator, input_state = _training_iterator(strategy, input_fn, per_replica,
                                             resume_step)

  if latest:
    _check_resume_compatible(latest, named_state)
    checkpoints.restore(named_state, latest)
    step = int(state.global_step.numpy())
    logging.info(
        "Resuming from %s (step %d of %d; the learning-rate schedule continues). "
        "init_checkpoint is not used because output_dir already has a checkpoint.",
        latest, step, num_train_steps)
    if step >= num_train_steps:
      logging.info(
          "output_dir already has step %d >= num_train_steps %d: nothing to train. "
          "Use a new --output_dir or raise --num_train_steps to train more.", step,
          num_train_steps)
      return step
    if input_state is not None:
      _restore_input_position(input_state, latest)
  else:
    if init_checkpoint:
      logging.info("Initialising weights from init_checkpoint %s (step 0; Adam "
                   "slots start at zero).", init_checkpoint)
      trainable = collections.OrderedDict(
          (n, v) for n, v in state.named_weights.items() if v.trainable)
      checkpoints.init_from_checkpoint(trainable, init_checkpoint)
    elif getattr(task, "weights_source", None):
      logging.info("Starting from the weights of %s (step 0; Adam slots start "
                   "at zero).", task.weights_source)
    else:
      logging.info("Training from scratch: no checkpoint in %s and no "
                   "init_checkpoint.", cfg.output_dir)
    step = 0
    if chief:
      _save_checkpoint(cfg, 0, named_state, input_state)

  writer = (tf.summary.create_file_writer(cfg.output_dir) if chief else None)
  logging.info("***** Training: steps %d -> %d, global batch %d (%d replicas x %d"
               "%s), %s *****", step, num_train_steps, train_batch_size,
               strategy.num_replicas_in_sync, per_replica,
               f" in {accum} micro-batches" if accum > 1 else "",
               cfg.mixed_precision)
  progress = _Progress(writer, step, num_train_steps, train_batch_size)
  save_every = cfg.save_checkpoints_steps or num_train_steps
  per_call = max(1, cfg.iterations_per_loop or 1)
  if not cfg.use_tpu and cfg.log_steps:
    per_call = min(per_call, cfg.log_steps)
  last_saved = latest or checkpoints.latest_checkpoint(cfg.output_dir)
  first_step, start, logs = step, time.time(), {}

  def interrupted():
    if not last_saved:
      return "no checkpoint was written yet; the same command starts over."
    return (f"the last checkpoint is {last_saved}; run the same command to "
            "resume from it.")

  common.set_interrupt_note(interrupted)
  while step < num_train_steps:
    next_save = (step // save_every + 1) * save_every
    n = min(per_call, num_train_steps - step, next_save - step)
    try:
      logs = trainer.run_steps(iterator, n, last_saved)
    except tf.errors.DataLossError as e:
      raise _data_loss_error(e) from None
    step = int(state.global_step.numpy())
    logs = {k: v.numpy() for k, v in logs.items()}
    progress.report(step, logs)
    if step % save_every == 0 or step >= num_train_steps:
      if chief:
        last_saved = _save_checkpoint(cfg, step, named_state, input_state)
      if on_checkpoint is not None:
        on_checkpoint(step, last_saved)
  logging.info(
      "Training done: steps %d -> %d in %s%s; checkpoint %s, TensorBoard "
      "summaries in %s.", first_step, step,
      common.format_duration(time.time() - start),
      f", final loss {_fmt(logs['loss'])}" if "loss" in logs else "",
      last_saved, cfg.output_dir)
  return step


def decode_record(record, name_to_features):
  """Parses one serialized tf.train.Example; int64 features (the only integer
  type it stores) become int32, as the models and TPUs want."""
  example = tf.io.parse_single_example(record, name_to_features)
  return {name: tf.cast(t, tf.int32) if t.dtype == tf.int64 else t
          for name, t in example.items()}


def shard_for_context(dataset, input_context):
  """This input pipeline's share of `dataset` under a distribution strategy."""
  if input_context is not None and input_context.num_input_pipelines > 1:
    dataset = dataset.shard(input_context.num_input_pipelines,
                            input_context.input_pipeline_id)
  return dataset


def _distribute(strategy, input_fn, per_replica, skip_steps=0):
  """`input_fn`'s dataset over the replicas, skipping `skip_steps` steps."""

  def dataset_fn(ctx):
    dataset = input_fn({"batch_size": per_replica, "input_context": ctx})
    if skip_steps:
      pipelines = ctx.num_input_pipelines if ctx else 1
      dataset = dataset.skip(
          skip_steps * max(1, strategy.num_replicas_in_sync // pipelines))
    return dataset

  return strategy.distribute_datasets_from_function(dataset_fn)


def _training_iterator(strategy, input_fn, per_replica, resume_step):
  """The training iterator and, where tf.data can save it (single device), its
  state; without one, a resumed run skips the batches already consumed."""
  iterator = iter(_distribute(strategy, input_fn, per_replica))
  try:
    return iterator, tf.train.Checkpoint(iterator=iterator)
  except (ValueError, TypeError):
    pass
  if resume_step:
    logging.info("Skipping the %d steps' worth of input batches already consumed.",
                 resume_step)
    iterator = iter(_distribute(strategy, input_fn, per_replica, resume_step))
  return iterator, None


def _input_state_prefix(checkpoint_prefix):
  directory, name = os.path.split(checkpoint_prefix)
  return os.path.join(directory, "input_state", name)


def _save_checkpoint(cfg, step, named_state, input_state):
  """Writes the input position, then model.ckpt-<step> (which the `checkpoint`
  file names only once both are complete); returns the prefix."""
  prefix = os.path.join(cfg.output_dir, "model.ckpt-%d" % step)
  if input_state is not None:
    try:
      input_state.write(_input_state_prefix(prefix))
    except (tf.errors.OpError, ValueError, TypeError) as e:
      logging.warning("Input position not saved (%s); a resumed run will restart "
                      "its input pipeline.", str(e).splitlines()[0])
  prefix = checkpoints.save(cfg.output_dir, step, named_state,
                            cfg.keep_checkpoint_max)
  # Drop the input positions of checkpoints that are gone (and temp leftovers).
  listed = tf.train.get_checkpoint_state(cfg.output_dir)
  keep = {os.path.basename(p) for p in
          (listed.all_model_checkpoint_paths if listed else [])}
  directory = os.path.join(cfg.output_dir, "input_state")
  for path in tf.io.gfile.glob(os.path.join(directory, "model.ckpt-*")):
    base = os.path.basename(path).split(".index")[0].split(".data-")[0]
    if base not in keep:
      common.remove(path)
  return prefix


def _restore_input_position(input_state, checkpoint_prefix):
  prefix = _input_state_prefix(checkpoint_prefix)
  if not tf.io.gfile.exists(prefix + ".index"):
    logging.warning("No saved input position for %s: the input pipeline starts "
                    "from the beginning.", checkpoint_prefix)
    return
  try:
    input_state.read(prefix).assert_consumed()
    logging.info("Restored the input position from %s.", prefix)
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    logging.warning("Could not restore the input position (%s); the input "
                    "pipeline starts from the beginning.", str(e).splitlines()[0])


# ------------------------------------------------------------------------------------
# Evaluation and prediction.
# ------------------------------------------------------------------------------------


# With --constant_kernels, prediction and evaluation start with a step that
# reads the variables and switch to one traced with constant kernels
# (modeling.constant_kernels) after this many batches: that trace costs more
# (Grappler copies the graph with the kernels in it per pass: BERT-Base bf16
# 12-17 s more, BERT-Mini 0.2 s, on the 2-core AVX-512 host) and each later
# batch less (Base 0.3-0.35 s of 0.8-1.1 s per batch of 32), so only a job
# that has already run this long is likely to repay it.
CONSTANT_KERNELS_AFTER_BATCHES = 64


def _forward_step(cfg, make_step, reduce_retracing, replicas):
  """A callable running `make_step(constant_kernels)(features)` compiled:
  with constant kernels off, one `tf.function`; on, that one for the first
  CONSTANT_KERNELS_AFTER_BATCHES batches, then one traced once (for any batch
  size and length) with the kernels as constants of today's weights."""
  variable_step = tf.function(make_step(False), jit_compile=None,
                              reduce_retracing=reduce_retracing)
  if not cfg.setting("constant_kernels"):
    return variable_step
  if replicas > 1:  # Replica threads trace outside the context's reach.
    logging.info("--constant_kernels needs one replica (%d here): the "
                 "kernels stay variable reads.", replicas)
    return variable_step
  state = {"batches": 0, "step": None}

  def step(features):
    state["batches"] += 1
    if state["batches"] <= CONSTANT_KERNELS_AFTER_BATCHES:
      return variable_step(features)
    if state["step"] is None:
      start = time.time()
      constant_step = tf.function(make_step(True), jit_compile=None,
                                  reduce_retracing=True)
      flat = tf.nest.flatten(features)
      if all(isinstance(t, tf.Tensor) for t in flat):  # One replica.
        constant_step = constant_step.get_concrete_function(
            tf.nest.map_structure(
                lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype),
                features))
      outputs = constant_step(features)
      state["step"] = constant_step
      logging.info("Batch %d on with constant kernels (traced in %.1f s).",
                   state["batches"], time.time() - start)
      return outputs
    return state["step"](features)

  return step


def evaluate(cfg, task, input_fn, eval_batch_size, steps=None,
             checkpoint_path=None, init_checkpoint=None, model=None, global_step=None):
  """Evaluates `model` (else `load_model`'s) on `steps` batches (None: all);
  returns each metric of `task.eval_metrics` (summed numerators / summed
  denominators) and `global_step`."""
  setup_determinism(cfg)
  strategy = get_strategy(cfg)
  if model is None:
    model, global_step, _ = load_model(cfg, task, checkpoint_path,
                                       init_checkpoint)
  dataset = _distribute(strategy, input_fn, _per_replica_batch(
      eval_batch_size, strategy, "eval_batch_size"))

  def make_step(constant_kernels):
    def replica_fn(features):
      with modeling.constant_kernels(constant_kernels):
        return task.eval_metrics(model, features)

    if cfg.use_xla:
      replica_fn = tf.function(replica_fn, jit_compile=True)

    def eval_step(features):
      per_replica_metrics = strategy.run(replica_fn, args=(features,))
      return {k: (strategy.reduce(tf.distribute.ReduceOp.SUM, n, axis=None),
                  strategy.reduce(tf.distribute.ReduceOp.SUM, d, axis=None))
              for k, (n, d) in per_replica_metrics.items()}

    return eval_step

  eval_step = _forward_step(cfg, make_step, reduce_retracing=False,
                            replicas=strategy.num_replicas_in_sync)

  totals = collections.OrderedDict()
  start = time.time()
  try:
    for done, features in enumerate(itertools.islice(dataset, steps), 1):
      for k, (n, d) in eval_step(features).items():
        prev = totals.get(k, (0.0, 0.0))
        totals[k] = (prev[0] + float(n.numpy()), prev[1] + float(d.numpy()))
      if done % 100 == 0:
        logging.info("Evaluated %d batches (%.1f batches/s)", done,
                     done / max(time.time() - start, 1e-9))
  except tf.errors.DataLossError as e:
    raise _data_loss_error(e) from None
  results = {k: (n / d if d else 0.0) for k, (n, d) in totals.items()}
  results["global_step"] = int(global_step or 0)
  if cfg.output_dir and _is_chief(strategy) and totals:
    # Beside the training curves, as the Estimator wrote them: `eval` run.
    write_scalars(tf.summary.create_file_writer(
        os.path.join(cfg.output_dir, "eval")), results["global_step"],
                  {k: v for k, v in results.items() if k != "global_step"})
  return results


# Features cut to the bucket length by `predict(..., dynamic_padding=True)`
# unless the task names its own in `task.sequence_features`.
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids", "input_type_ids",
                     "token_type_ids")


def bucket_length(length, max_length):
  """The padded length of a batch whose longest example has `length` tokens: a
  multiple of 8 up to 64, of 16 up to 128, of 32 up to 256, of 64 beyond (few
  shapes, so few retraces), capped at `max_length`."""
  for limit, step in ((64, 8), (128, 16), (256, 32)):
    if length <= limit:
      break
  else:
    step = 64
  return min(max(step, -(-length // step) * step), max_length)


def predict(cfg, task, input_fn, predict_batch_size, checkpoint_path=None,
            init_checkpoint=None, model=None, dynamic_padding=False,
            bucket_window=4096):
  """Yields one dict of numpy values per example, in input order.
  `dynamic_padding=True` (one replica) sorts each window of `bucket_window`
  examples by length and cuts each batch's sequence features (and per-token
  outputs) to `bucket_length(longest)`."""
  setup_determinism(cfg)
  strategy = get_strategy(cfg)
  if model is None:
    model, _, _ = load_model(cfg, task, checkpoint_path, init_checkpoint)
  dataset = input_fn({"batch_size": predict_batch_size, "input_context": None})
  replicas = strategy.num_replicas_in_sync
  if dynamic_padding and replicas > 1:
    logging.info("Length-bucketed prediction needs one replica (%d here): "
                 "predicting at the fixed length.", replicas)
    dynamic_padding = False
  if replicas > 1:
    # Each global batch is split across replicas in order, so concatenating the
    # replicas' results restores the input order.
    dataset = strategy.experimental_distribute_dataset(dataset)

  def make_step(constant_kernels):
    def replica_fn(features):
      with modeling.constant_kernels(constant_kernels):
        return task.predict(model, features)

    if cfg.use_xla:
      replica_fn = tf.function(replica_fn, jit_compile=True,
                               reduce_retracing=True)
    return lambda features: strategy.run(replica_fn, args=(features,))

  predict_step = _forward_step(cfg, make_step, reduce_retracing=True,
                               replicas=replicas)

  try:
    if dynamic_padding:
      names = tuple(getattr(task, "sequence_features", None) or SEQUENCE_FEATURES)
      yield from _predict_bucketed(predict_step, dataset, predict_batch_size,
                                   max(1, int(bucket_window)), names)
      return

    for features in dataset:
      outputs = predict_step(features)
      if replicas > 1:
        parts = strategy.experimental_local_results(outputs)
        outputs = {k: np.concatenate([p[k].numpy() for p in parts], axis=0)
                   for k in parts[0]}
      else:
        outputs = {k: v.numpy() for k, v in outputs.items()}
      n = len(next(iter(outputs.values())))
      for i in range(n):
        yield {k: v[i] for k, v in outputs.items()}
  except GeneratorExit:  # An abandoned generator (even at interpreter exit,
    raise                # when `tf` may already be gone): nothing to report.
  except tf.errors.DataLossError as e:
    raise _data_loss_error(e) from None


def _predict_bucketed(predict_step, dataset, batch_size, window, names):
  """`predict`'s dynamic-padding loop: sort a window by length, cut, restore."""

  def run_window(batches):
    features = {k: np.concatenate([b[k] for b in batches], axis=0)
                for k in batches[0]}
    full = features["input_mask"].shape[1]
    cut_names = [k for k in names if k in features]
    lengths = np.count_nonzero(features["input_mask"], axis=1)
    order = np.argsort(lengths, kind="stable")
    results = [None] * len(order)
    for start in range(0, len(order), batch_size):
      index = order[start:start + batch_size]
      cut = bucket_length(max(1, int(lengths[index].max())), full)
      batch = {k: tf.convert_to_tensor(
          v[index][:, :cut] if k in cut_names else v[index])
               for k, v in features.items()}
      outputs = {k: v.numpy() for k, v in predict_step(batch).items()}
      for j, i in enumerate(index):
        results[i] = {k: v[j] for k, v in outputs.items()}
    return results

  pending, count = [], 0
  for features in dataset:
    if "input_mask" not in features:
      raise UserError("dynamic_padding needs an `input_mask` feature to find "
                      "each example's length.")
    pending.append({k: v.numpy() for k, v in features.items()})
    count += len(pending[-1]["input_mask"])
    if count >= window:
      yield from run_window(pending)
      pending, count = [], 0
  if pending:
    yield from run_window(pending)


def write_eval_results(path, results, header="***** Eval results *****"):
  """Writes the original's eval_results.txt: sorted `key = value` lines."""
  logging.info(header)
  lines = ["%s = %s\n" % (key, str(results[key])) for key in sorted(results)]
  for line in lines:
    logging.info("  %s", line.rstrip("\n"))
  common.write_text(path, lines)
  logging.info("Wrote %s.", path)
