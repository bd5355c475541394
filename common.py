# coding=utf-8
"""What every script shares: one-line user errors, atomic writes, progress lines.

Imports no TensorFlow at module level, so `create_pretraining_data.py` stays
TensorFlow-free; `tf.io.gfile` is imported only for paths that are not local
(`gs://...` and other `scheme://` paths).

  * `UserError` and `main_wrapper`: a problem with the user's flags or files is
    reported as one `ERROR:` line and exit status 1; Ctrl-C as one line and 130.
  * `atomic_write` / `atomic_path` / `write_text`: outputs are written under a
    temporary name and renamed when complete, so an interrupted or failed run
    never leaves a half-written file under the final name.
  * `Progress` / `format_duration`: rate-limited progress lines with a rate and an
    ETA estimated from the steady-state rate (tracing and warm-up excluded).
"""

import contextlib
import os
import shutil
import sys
import time
import uuid

from absl import logging


class UserError(Exception):
  """A problem with the user's flags or files, reported as one line."""


# ------------------------------------------------------------------------------------
# Files: local paths through os, remote ones (scheme://) through tf.io.gfile.
# ------------------------------------------------------------------------------------


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
  if "b" in mode:
    return open(path, mode)
  return open(path, mode, encoding="utf-8")


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
    while True:
      block = f.read(1 << 22)
      if not block:
        break
      count += block.count(b"\n")
      last = block[-1:]
  return count + (last != b"\n")


def write_text(path, text):
  """Writes `text` (or an iterable of lines) to `path` atomically."""
  with atomic_write(path) as f:
    if isinstance(text, str):
      f.write(text)
    else:
      for line in text:
        f.write(line)


# ------------------------------------------------------------------------------------
# Progress.
# ------------------------------------------------------------------------------------


def format_duration(seconds):
  """4000 -> '1h06m40s', 75 -> '1m15s'; '?' when unknown."""
  if seconds is None or seconds != seconds or seconds in (float("inf"),
                                                          float("-inf")):
    return "?"
  seconds = int(round(max(seconds, 0)))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress(object):
  """Rate and ETA of a long job that counts `done` units up to `total`.

  `due()` is true every `interval_secs` (never when it is <= 0). `measure(done)`
  returns (rate since the last measurement, ETA in seconds or None). The ETA
  uses the rate after the first measurement, so tracing, compilation and
  warm-up before it do not inflate the estimate.
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
    if self.interval is None or self.interval <= 0:
      return False
    now = time.time()
    if now - self._last_due >= self.interval:
      self._last_due = now
      return True
    return False

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


# ------------------------------------------------------------------------------------
# main.
# ------------------------------------------------------------------------------------


def one_line(error):
  return " ".join(str(error).split()) or type(error).__name__


def report_error(message):
  """Prints `ERROR: message` once on stderr."""
  sys.stderr.write("ERROR: %s\n" % message)
  sys.stderr.flush()


def main_wrapper(main, interrupted_message=None):
  """Wraps a script's main for `app.run`: INFO logging and one-line errors.

  UserError, ValueError and FileNotFoundError become one `ERROR:` line and exit
  status 1; Ctrl-C becomes one line (`interrupted_message()` if given, e.g.
  where the last checkpoint is) and exit status 130.
  """

  def wrapped(argv):
    logging.set_verbosity(logging.INFO)
    try:
      return main(argv)
    except (UserError, ValueError, FileNotFoundError) as e:
      report_error(one_line(e))
      sys.exit(1)
    except KeyboardInterrupt:
      message = interrupted_message() if interrupted_message else None
      sys.stderr.write("Interrupted%s\n" % (": " + message if message else "."))
      sys.stderr.flush()
      sys.exit(130)

  return wrapped
