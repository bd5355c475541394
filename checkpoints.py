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
"""Name-based checkpoint I/O in the original BERT format.

Reads the released `bert_model.ckpt` bundles and the training checkpoints the
original's Estimator wrote; writes `model.ckpt-<step>.index` +
`.data-00000-of-00001` and the `checkpoint` state file holding exactly the
given plain names (model variables, `<var>/adam_m`, `<var>/adam_v`,
`global_step` int64) - no object graph, no foreign keys - so the original code,
`tf.train.load_checkpoint` and converters (e.g. HuggingFace's) read them.

All file access goes through `tf.io.gfile`, so `gs://` paths work.
"""

import collections
import os
import posixpath
import re
import uuid

from absl import logging
import numpy as np
import tensorflow as tf

import common

_DATA_SUFFIX_RE = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_STATE_FILE = "checkpoint"


class LoadReport(collections.namedtuple(
    "LoadReport", ["path", "loaded", "missing", "unused"])):
  """What `init_from_checkpoint` did: the prefix read, the names `loaded`
  (model order), the model's names `missing` from the checkpoint (they kept
  their initialisers) and the checkpoint's names the model does not have."""

  def summary(self, max_names=20):
    """A human-readable multi-line summary."""
    lines = ["Initialized %d of %d model variables from %s" %
             (len(self.loaded), len(self.loaded) + len(self.missing),
              self.path)]
    if self.missing:
      lines.append("  %d model variables not in the checkpoint (kept their "
                   "initializers): %s" % (len(self.missing),
                                          _listing(self.missing, max_names)))
    if self.unused:
      lines.append("  %d checkpoint variables not used by the model: %s" %
                   (len(self.unused), _listing(self.unused, max_names)))
    return "\n".join(lines)

  def __str__(self):
    return self.summary()


def _paths(path):
  """The path module for `path`: posixpath for URLs such as gs://."""
  return posixpath if "://" in path else os.path


def _join(directory, name):
  return _paths(directory).join(directory, name)


def _basename(path):
  return _paths(path).basename(path)


def _list_dir(directory):
  try:
    return sorted(tf.io.gfile.listdir(directory))
  except tf.errors.OpError:
    return []


def _found_files_text(directory, basename=None, limit=30):
  """Describes what is in `directory`, for error messages."""
  if not tf.io.gfile.isdir(directory):
    return "directory %s does not exist" % directory
  names = [n.rstrip("/") for n in _list_dir(directory)]
  if basename:
    related = [n for n in names if n.startswith(basename)]
    if related:
      names = related
  if not names:
    return "directory %s is empty" % directory
  return "found in %s: %s" % (directory, _listing(names, limit))


def _listing(names, limit):
  """The first `limit` of `names`, joined, and how many more there are."""
  text = ", ".join(names[:limit])
  if len(names) > limit:
    text += ", ... (%d more)" % (len(names) - limit)
  return text


def _read_state_paths(directory):
  """(latest, [all]) prefixes of the `checkpoint` state file, relative ones
  joined to `directory`; (None, []) without a usable state file."""
  try:
    state = tf.train.get_checkpoint_state(directory)
  except ValueError:  # A state file without model_checkpoint_path.
    state = None
  if state is None:
    return None, []
  return state.model_checkpoint_path, list(state.all_model_checkpoint_paths)


def _escape(text):
  return text.replace("\\", "\\\\").replace('"', '\\"')


def _bundle_files(prefix):
  """(index_path, [data paths found]) for a prefix."""
  index = prefix + ".index"
  data = sorted(tf.io.gfile.glob(prefix + ".data-?????-of-?????"))
  return index, data


def _check_bundle(prefix):
  """Raises FileNotFoundError unless the V2 bundle at `prefix` is complete."""
  index, data = _bundle_files(prefix)
  num_shards = int(_DATA_SUFFIX_RE.search(data[0]).group(2)) if data else 1
  expected = [index] + ["%s.data-%05d-of-%05d" % (prefix, i, num_shards)
                        for i in range(num_shards)]
  missing = [p for p in expected if not tf.io.gfile.exists(p)]
  if missing:
    directory = _paths(prefix).dirname(prefix) or "."
    raise FileNotFoundError(
        "Checkpoint %s is incomplete or absent: expected the files %s; missing "
        "%s; %s. A TF checkpoint is a prefix of several files: pass the "
        "prefix (e.g. .../bert_model.ckpt), one of its files, or its "
        "directory." % (prefix, ", ".join(_basename(p) for p in expected),
                        ", ".join(_basename(p) for p in missing),
                        _found_files_text(directory, _basename(prefix))))
  return prefix


def normalize_checkpoint_path(path):
  """Returns the checkpoint prefix for a prefix, file or directory.

  Accepts `.../bert_model.ckpt`, its `.index`, `.data-00000-of-00001` or
  `.meta` file, or a directory (its state file's latest entry, else its one
  `*.index` prefix). FileNotFoundError lists the files expected and found;
  ValueError for a directory of several checkpoints and no state file.
  """
  if path is None or not str(path):
    raise FileNotFoundError("No checkpoint path given")
  path = os.fspath(path)
  if len(path) > 1 and path.endswith("/"):
    path = path.rstrip("/")
  if tf.io.gfile.isdir(path):
    latest, _ = _read_state_paths(path)
    if latest:
      # Like tf.train.latest_checkpoint: a state file copied from elsewhere
      # may name an absolute path; then look for its basename here.
      for prefix in (latest, _join(path, _basename(latest))):
        if tf.io.gfile.exists(prefix + ".index"):
          return _check_bundle(prefix)
    indexes = sorted(tf.io.gfile.glob(_join(path, "*.index")))
    if len(indexes) == 1:
      return _check_bundle(indexes[0][:-len(".index")])
    if not indexes:
      raise FileNotFoundError(
          "No checkpoint in directory %s: expected a `checkpoint` state file "
          "or a <prefix>.index + <prefix>.data-00000-of-00001 pair; %s" %
          (path, _found_files_text(path)))
    raise ValueError(
        "Directory %s holds several checkpoints (%s) and no usable "
        "`checkpoint` state file: pass one prefix explicitly." %
        (path, ", ".join(_basename(p)[:-len(".index")] for p in indexes)))
  if path.endswith(".index"):
    prefix = path[:-len(".index")]
  elif path.endswith(".meta"):
    prefix = path[:-len(".meta")]
  else:
    m = _DATA_SUFFIX_RE.search(path)
    prefix = path[:m.start()] if m else path
  return _check_bundle(prefix)


def list_variables(path):
  """List of (name, shape) in the checkpoint, like tf.train.list_variables."""
  return tf.train.list_variables(normalize_checkpoint_path(path))


def latest_checkpoint(output_dir):
  """The latest checkpoint prefix in `output_dir` (its state file's) or None."""
  return tf.train.latest_checkpoint(output_dir)


def _likely_cause(name, want, got):
  """Which bert_config.json value disagrees with the checkpoint, in words."""
  if name.endswith("word_embeddings") or name == "cls/predictions/output_bias":
    keys = [("vocab_size", 0)]
  elif name.endswith("position_embeddings"):
    keys = [("max_position_embeddings", 0)]
  elif name.endswith("token_type_embeddings"):
    keys = [("type_vocab_size", 0)]
  elif "output_weights" in name or name.endswith("output_bias"):
    return ("the number of labels/outputs of the task head differs from the "
            "checkpoint (different task or label list)")
  else:
    keys = []
  if "intermediate/dense/kernel" in name:
    keys += [("hidden_size", 0), ("intermediate_size", 1)]
  elif "intermediate/dense/bias" in name:
    keys += [("intermediate_size", 0)]
  elif "embeddings" in name:
    keys += [("hidden_size", len(want) - 1)]
  else:
    keys += [("hidden_size", len(want) - 1), ("hidden_size", 0)]
  for key, index in keys:
    if index < min(len(want), len(got)) and want[index] != got[index]:
      return ("%s in bert_config.json is %s but the checkpoint's is %s (wrong "
              "bert_config.json%s for this model)" %
              (key, want[index], got[index],
               " or vocab.txt" if key == "vocab_size" else ""))
  return ("hidden_size / intermediate_size / num_attention_heads in "
          "bert_config.json do not match this checkpoint (wrong "
          "bert_config.json for this model)")


def _var_shape(variable):
  return [int(d) for d in variable.shape]


def _check_shapes(named_variables, shape_map, prefix):
  errors = []
  for name, variable in named_variables.items():
    if name not in shape_map:
      continue
    want = _var_shape(variable)
    got = [int(d) for d in shape_map[name]]
    if want != got:
      errors.append((name, want, got))
  if errors:
    name, want, got = errors[0]
    more = ""
    if len(errors) > 1:
      more = " (and %d more mismatches: %s)" % (
          len(errors) - 1, ", ".join("%s model %s vs checkpoint %s" % e
                                     for e in errors[1:6]))
    raise ValueError(
        "Shape mismatch for variable %s: the model has shape %s but checkpoint "
        "%s has shape %s. Likely cause: %s.%s" %
        (name, want, prefix, got, _likely_cause(name, want, got), more))


def _assign(variable, value):
  variable.assign(np.asarray(value).astype(
      variable.dtype.base_dtype.as_numpy_dtype, copy=False))


def init_from_checkpoint(named_variables, path, log=True):
  """Initialises the given variables from the checkpoint where present.

  The original rule: each variable of `named_variables` (original name ->
  tf.Variable; callers pass the trainable model variables, so no Adam slots)
  whose name is in the checkpoint is assigned, the others keep their
  initialisers, extra checkpoint variables are ignored. All shapes are checked
  first (ValueError naming the variable, both shapes and the likely cause).
  Returns a `LoadReport`; `log` logs it.
  """
  prefix = normalize_checkpoint_path(path)
  reader = tf.train.load_checkpoint(prefix)
  shape_map = reader.get_variable_to_shape_map()
  _check_shapes(named_variables, shape_map, prefix)
  loaded, missing = [], []
  for name, variable in named_variables.items():
    if name in shape_map:
      _assign(variable, reader.get_tensor(name))
      loaded.append(name)
    else:
      missing.append(name)
  used = set(loaded)
  unused = sorted(n for n in shape_map if n not in used)
  report = LoadReport(path=prefix, loaded=loaded, missing=missing,
                      unused=unused)
  if log and (verbose_init or logging.level_debug()):
    logging.info("**** Trainable Variables ****")
    for name, variable in named_variables.items():
      init_string = ", *INIT_FROM_CKPT*" if name in used else ""
      # As the original printed var.name (with ":0") and var.shape.
      logging.info("  name = %s:0, shape = %s%s", name,
                   tuple(_var_shape(variable)), init_string)
    for line in report.summary().splitlines():
      logging.info("%s", line)
  elif log:
    # Optimizer slots and global_step of a training checkpoint are expected
    # to be unused by an inference model: counted, not listed.
    slots = [n for n in unused if n == "global_step" or
             n.endswith(("/adam_m", "/adam_v", "/lamb_m", "/lamb_v"))]
    brief = report._replace(unused=[n for n in unused if n not in slots])
    logging.info("%s%s (--verbose_init lists every variable).", "; ".join(
        line.strip() for line in brief.summary(max_names=3).splitlines()),
                 "; %d optimizer slots and global_step not needed" %
                 len(slots) if slots else "")
  return report


# The original's per-variable "name = ..., *INIT_FROM_CKPT*" lines: with
# --verbose_init (or --verbosity=1), else one summary line per load.
verbose_init = False


def set_verbose_init(value):
  global verbose_init
  verbose_init = bool(value)


def restore(named_tensors, path):
  """Restores ALL of `named_tensors` (name -> tf.Variable, incl. Adam slots
  and `global_step`) from a checkpoint, for resuming; returns its prefix.
  ValueError for names missing from the checkpoint or shape mismatches."""
  prefix = normalize_checkpoint_path(path)
  reader = tf.train.load_checkpoint(prefix)
  shape_map = reader.get_variable_to_shape_map()
  missing = [n for n in named_tensors if n not in shape_map]
  if missing:
    hint = ""
    if any(n.endswith(("/adam_m", "/adam_v")) or n == "global_step"
           for n in missing):
      hint = (" A checkpoint without optimizer slots/global_step (e.g. a "
              "released bert_model.ckpt) is an --init_checkpoint, not a "
              "training directory to resume from.")
    raise ValueError(
        "Cannot resume from %s: %d of %d variables are missing from it: %s%s."
        "%s" % (prefix, len(missing), len(named_tensors),
                ", ".join(missing[:10]),
                " ..." if len(missing) > 10 else "", hint))
  _check_shapes(named_tensors, shape_map, prefix)
  for name, variable in named_tensors.items():
    _assign(variable, reader.get_tensor(name))
  logging.info("Restored %d variables from %s", len(named_tensors), prefix)
  return prefix


def _read_value(value):
  """A tensor for a variable (incl. tf.distribute ones) or array-like."""
  try:
    return value.read_value()
  except (AttributeError, ValueError, RuntimeError, NotImplementedError):
    return tf.convert_to_tensor(value)


def _to_save_tensor(name, value):
  tensor = _read_value(value)
  if name == "global_step":
    return tf.cast(tensor, tf.int64)
  if tensor.dtype.is_floating and tensor.dtype != tf.float32:
    return tf.cast(tensor, tf.float32)
  return tensor


def _delete_bundle(prefix):
  for p in [prefix + ".index", prefix + ".meta"] + tf.io.gfile.glob(
      prefix + ".data-?????-of-?????"):
    try:
      if tf.io.gfile.exists(p):
        tf.io.gfile.remove(p)
    except tf.errors.OpError as e:
      logging.warning("Could not delete old checkpoint file %s: %s", p, e)


def _write_state(output_dir, latest, all_paths):
  lines = ['model_checkpoint_path: "%s"' % _escape(latest)]
  lines.extend('all_model_checkpoint_paths: "%s"' % _escape(p)
               for p in all_paths)
  common.write_text(_join(output_dir, _STATE_FILE), "\n".join(lines) + "\n")


def save(output_dir, global_step, named_tensors, keep_checkpoint_max=5):
  """Writes `model.ckpt-<step>` in the original format and updates `checkpoint`.

  The bundle holds exactly `named_tensors` (name -> variable, tensor or array;
  floats as float32, `global_step` int64). Bundle and state file are written
  under temporary names and renamed, so the state never names a half-written
  checkpoint. Keeps the `keep_checkpoint_max` newest (0 or None: all).
  Returns the prefix written, e.g. `<output_dir>/model.ckpt-1000`.
  """
  if not named_tensors:
    raise ValueError("No tensors to save")
  step = int(np.asarray(_read_value(global_step)))
  tf.io.gfile.makedirs(output_dir)
  basename = "model.ckpt-%d" % step
  prefix = _join(output_dir, basename)
  tmp_prefix = _join(output_dir, "%s_temp_%s" % (basename, uuid.uuid4().hex))

  names = list(named_tensors.keys())
  try:
    with tf.device("CPU:0"):
      tensors = [_to_save_tensor(n, named_tensors[n]) for n in names]
      tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                        shape_and_slices=[""] * len(names), tensors=tensors)
    tmp_index, tmp_data = _bundle_files(tmp_prefix)
    if not tmp_data or not tf.io.gfile.exists(tmp_index):
      raise IOError("SaveV2 did not write %s.{index,data-*}" % tmp_prefix)
    # A prefix that existed before (same step saved twice) is replaced: remove
    # its data shards first so no stale shard survives.
    for p in tf.io.gfile.glob(prefix + ".data-?????-of-?????"):
      tf.io.gfile.remove(p)
    for p in tmp_data:
      suffix = _DATA_SUFFIX_RE.search(p).group(0)
      tf.io.gfile.rename(p, prefix + suffix, overwrite=True)
    # The index goes last: a prefix with an .index is complete.
    tf.io.gfile.rename(tmp_index, prefix + ".index", overwrite=True)
  except Exception:
    _delete_bundle(tmp_prefix)
    raise

  # The state file lists the bundles in output_dir by their basenames.
  here = _join(output_dir, "")
  all_paths = [p[len(here):] if p.startswith(here) else p
               for p in _read_state_paths(output_dir)[1]]
  all_paths = [p for p in all_paths if p != basename] + [basename]
  num_removed = max(len(all_paths) - (keep_checkpoint_max or len(all_paths)),
                    0)
  removed, all_paths = all_paths[:num_removed], all_paths[num_removed:]
  # The state first, then the deletions: it never names a deleted bundle.
  _write_state(output_dir, basename, all_paths)
  for old in removed:
    _delete_bundle(_join(output_dir, old))  # An absolute `old` stays as is.
  logging.info("Saved checkpoint %s (%d tensors)", prefix, len(names))
  return prefix


def check_head_is_trained(checkpoint_path, head_variables, head_name,
                          allow_untrained_head, what):
  """Refuses `what` (e.g. "--do_eval") when `checkpoint_path` (or None)
  lacks the head's `head_variables`: the original silently used a random head
  with a pre-trained checkpoint (#1037). `allow_untrained_head` only warns."""
  if checkpoint_path:
    names = {name for name, _ in list_variables(checkpoint_path)}
    missing = [n for n in head_variables if n not in names]
    where = "checkpoint %s has no %s head (%s)" % (
        checkpoint_path, head_name, ", ".join(missing))
  else:
    missing = list(head_variables)
    where = "no checkpoint (output_dir has none and --init_checkpoint is unset)"
  if not missing:
    return
  if allow_untrained_head:
    logging.warning("%s: %s; the %s head is RANDOM (--allow_untrained_head).",
                    what, where, head_name)
    return
  raise common.UserError(
      "%s: %s, so the predictions would come from a random head. Fine-tune "
      "first (--do_train) or point --init_checkpoint/--output_dir at a "
      "fine-tuned checkpoint; pass --allow_untrained_head to do it anyway." %
      (what, where))


def read_tensors(path):
  """Every tensor of a checkpoint: name -> numpy array (for converters)."""
  reader = tf.train.load_checkpoint(normalize_checkpoint_path(path))
  return {name: reader.get_tensor(name)
          for name in sorted(reader.get_variable_to_shape_map())}


def save_bundle(prefix, named_arrays):
  """Writes exactly `named_arrays` (dtypes kept) as the bundle
  `prefix`.{index,data-*}, like a released `bert_model.ckpt` (no state file).
  """
  if not named_arrays:
    raise ValueError("No tensors to save")
  names = sorted(named_arrays)
  with tf.device("CPU:0"):
    tensors = [tf.convert_to_tensor(named_arrays[n]) for n in names]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
  return prefix
