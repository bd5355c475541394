# coding=utf-8
"""What every script shares: one-line user errors, atomic writes, progress lines.

No TensorFlow at module level (create_pretraining_data.py stays TF-free):
`tf.io.gfile` serves only `scheme://` paths such as gs://. Importing this module
before TensorFlow (every script does) keeps TensorFlow's C++ start-up lines
(oneDNN notice, "Could not find cuda drivers", `cuInit` failures on CPU-only
hosts) off the terminal; `TF_CPP_MIN_LOG_LEVEL=0` shows them again.
"""

import contextlib
import importlib.abc
import importlib.util
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid

from absl import logging


class UserError(Exception):
  """A problem with the user's flags or files, reported as one line."""


# TensorFlow's INFO lines (level 0) stay hidden unless the user asks for them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# What TensorFlow's C++ side prints on import whatever TF_CPP_MIN_LOG_LEVEL says
# (it logs through absl before absl's logging is initialised).
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations|"
    r"cudart_stub|Could not find cuda drivers|cuInit|cpu_feature_guard|"
    r"To enable the following instructions|rebuild TensorFlow with the "
    r"appropriate compiler flags|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"TF-TRT Warning|computation placer already registered|"
    r"absl::InitializeLog\(\) is called")


@contextlib.contextmanager
def _stderr_filtered(noise):
  """Captures file descriptor 2 and replays the lines that are not `noise`."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode("utf-8", "replace").splitlines(True):
        if not noise.search(line):
          sys.stderr.write(line)
      sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
  """Runs the first `import tensorflow` with its C++ start-up lines filtered."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name != "tensorflow":
      return None
    sys.meta_path.remove(self)  # One import only; then TensorFlow is loaded.
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
      return spec
    exec_module = spec.loader.exec_module

    def quiet_exec_module(module):
      with _stderr_filtered(_STARTUP_NOISE):
        exec_module(module)
        # The GPU platform's start-up (cuInit) logs on the first device query;
        # listing devices does not fix the runtime configuration yet.
        try:
          module.config.list_physical_devices()
        except Exception:  # pylint: disable=broad-except
          pass

    spec.loader.exec_module = quiet_exec_module
    return spec


def _tf_log_level():
  try:
    return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    return 0


if "tensorflow" not in sys.modules and _tf_log_level() >= 1:
  try:
    os.fstat(2)
    sys.meta_path.insert(0, _QuietTensorFlowImport())
  except OSError:  # No stderr to capture.
    pass


# Files: local paths through os, remote ones (scheme://) through tf.io.gfile.


def is_remote(path):
  return "://" in str(path)


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def exists(path):
  return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def remove(path):
  """Removes a file or a directory tree if it exists."""
  if is_remote(path):
    gfile = _gfile()
    if gfile.exists(path):
      if gfile.isdir(path):
        gfile.rmtree(path)
      else:
        gfile.remove(path)
  elif os.path.isdir(path) and not os.path.islink(path):
    shutil.rmtree(path, ignore_errors=True)
  elif os.path.lexists(path):
    os.remove(path)


def rename(src, dst):
  """Moves `src` to `dst`, replacing a file (or a directory tree) at `dst`."""
  if is_remote(dst):
    gfile = _gfile()
    if gfile.isdir(src):
      remove(dst)
      gfile.rename(src, dst)
    else:
      gfile.rename(src, dst, overwrite=True)
  else:
    if os.path.isdir(src) and os.path.isdir(dst):
      shutil.rmtree(dst)
    os.replace(src, dst)


def open_file(path, mode="r"):
  if is_remote(path):
    f = _gfile().GFile(path, mode)
    if "w" in mode:
      f.write(b"" if "b" in mode else "")  # GFile creates on the first write.
    return f
  return open(path, mode, encoding=None if "b" in mode else "utf-8")


def temp_name(path):
  """A unique sibling of `path` for writing before the rename."""
  return "%s.tmp-%d-%s" % (str(path).rstrip("/"), os.getpid(),
                           uuid.uuid4().hex[:8])


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path to write `path` (a file or a directory) at.

  On success the temporary is renamed to `path` (replacing what was there); on
  any exception it is removed and the exception propagates.
  """
  tmp = temp_name(path)
  try:
    yield tmp
  except BaseException:
    remove(tmp)
    raise
  rename(tmp, path)


@contextlib.contextmanager
def atomic_write(path, mode="w"):
  """`with atomic_write(path) as f:` writes `path` through a temporary file."""
  with atomic_path(path) as tmp:
    with open_file(tmp, mode) as f:
      yield f


def count_lines(path):
  """Number of lines of a file (None for stdin, "-"), for an ETA."""
  if path == "-":
    return None
  count, last = 0, b"\n"
  with open_file(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      count += block.count(b"\n")
      last = block[-1:]
  return count + (last != b"\n")


def write_text(path, text):
  """Writes `text` (or an iterable of lines) to `path` atomically."""
  with atomic_write(path) as f:  # GFile has no writelines.
    for line in [text] if isinstance(text, str) else text:
      f.write(line)


def format_duration(seconds):
  """4000 -> '1h06m40s', 75 -> '1m15s'; '?' when unknown."""
  if seconds is None or not math.isfinite(seconds):
    return "?"
  seconds = int(round(max(seconds, 0)))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress(object):
  """Rate and ETA of a long job that counts `done` units up to `total`.

  `due()` is true every `interval_secs` (never when it is <= 0). `measure(done)`
  returns (rate since the last measurement, ETA in seconds or None); the ETA
  uses the rate after the first measurement (tracing and warm-up excluded).
  """

  def __init__(self, total=None, interval_secs=10.0, start_done=0):
    self.total = total
    self.interval = interval_secs
    self.start = time.time()
    self.start_done = start_done
    self._last_due = self.start
    self._prev = (self.start, start_done)
    self._steady = None

  def due(self):
    now = time.time()
    if not self.interval or self.interval < 0 or (
        now - self._last_due < self.interval):
      return False
    self._last_due = now
    return True

  def elapsed(self):
    return time.time() - self.start

  def measure(self, done):
    now = time.time()
    prev_time, prev_done = self._prev
    rate = (done - prev_done) / max(now - prev_time, 1e-9)
    self._prev = (now, done)
    if self._steady is None:
      self._steady = (now, done)
      since_time, since_done = self.start, self.start_done
    else:
      since_time, since_done = self._steady
      if done == since_done:
        since_time, since_done = self.start, self.start_done
    eta = None
    if self.total:
      eta_rate = (done - since_done) / max(now - since_time, 1e-9)
      if eta_rate > 0:
        eta = max(self.total - done, 0) / eta_rate
    return rate, eta


def one_line(error):
  return " ".join(str(error).split()) or type(error).__name__


# What a Ctrl-C should tell the user (set by the training loop: where the last
# checkpoint is).
_interrupt_note = None


def set_interrupt_note(note):
  """`note()` -> the text of the Ctrl-C line (None: a plain 'Interrupted.')."""
  global _interrupt_note
  _interrupt_note = note


def main_wrapper(main):
  """Wraps a script's main for `app.run`: INFO logging; UserError, ValueError
  and FileNotFoundError become one `ERROR:` line and exit status 1, Ctrl-C
  one line (with the `set_interrupt_note` note) and exit status 130."""

  def wrapped(argv):
    logging.set_verbosity(logging.INFO)
    try:
      return main(argv)
    except (UserError, ValueError, FileNotFoundError) as e:
      sys.stderr.write("ERROR: %s\n" % one_line(e))
      sys.stderr.flush()
      sys.exit(1)
    except KeyboardInterrupt:
      message = _interrupt_note() if _interrupt_note else None
      sys.stderr.write("Interrupted%s\n" % (": " + message if message else "."))
      sys.stderr.flush()
      sys.exit(130)

  return wrapped
