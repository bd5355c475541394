"""Wall time and peak memory of create_pretraining_data.py.

Runs the script as a child process on the six Jane Austen novels
(../shared/data/corpus/janeaustenr) with the original's default flags
(dupe_factor 10, max_seq_length 128, max_predictions_per_seq 20, seed 12345,
do_lower_case) in these configurations:

  memory_w1     in-memory, 1 worker: the original's records (checked against
                --check_against when given)
  memory_w2     in-memory, 2 workers
  stream_1x     --streaming, 1 worker, the corpus once
  stream_20x    --streaming, 1 worker, the corpus repeated 20 times

For each it prints wall seconds, instances, the child's peak RSS (the
largest single process, from wait4) and the peak RSS summed over the whole
process tree (sampled every 20 ms from /proc). The original script took 74 s
and 955 MB peak RSS for memory_w1 on the project's development machine.

Usage:
  python bench/bench_create_pretraining_data.py [--configs=memory_w1,...]
      [--work_dir=/tmp/cpd_bench] [--corpus_dir=...] [--vocab_file=...]
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("BERT_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
SCRIPT = os.path.join(ROOT, "create_pretraining_data.py")


def _tree_rss_kb(pid):
  """Sum of VmRSS over `pid` and its descendants (Linux /proc)."""
  children = {}
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open("/proc/%s/stat" % entry) as f:
        fields = f.read().rsplit(")", 1)[1].split()
      children.setdefault(int(fields[1]), []).append(int(entry))
    except OSError:
      continue
  total = 0
  stack = [pid]
  while stack:
    current = stack.pop()
    try:
      with open("/proc/%d/status" % current) as f:
        match = re.search(r"VmRSS:\s+(\d+)", f.read())
      if match:
        total += int(match.group(1))
    except OSError:
      pass
    stack.extend(children.get(current, []))
  return total


def run(args, label):
  """Runs the script; returns a dict of measurements."""
  start = time.time()
  proc = subprocess.Popen([sys.executable, SCRIPT] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  peak_tree = [0]
  done = threading.Event()

  def sample():
    while not done.is_set():
      peak_tree[0] = max(peak_tree[0], _tree_rss_kb(proc.pid))
      done.wait(0.02)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  stderr_lines = []
  reader = threading.Thread(
      target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
  reader.start()
  _, status, usage = os.wait4(proc.pid, 0)
  wall = time.time() - start
  done.set()
  sampler.join()
  reader.join()
  proc.returncode = os.waitstatus_to_exitcode(status)
  stderr = "".join(stderr_lines)
  if proc.returncode:
    raise RuntimeError("%s failed:\n%s" % (label, stderr[-3000:]))
  match = re.search(r"Wrote (\d+) total instances", stderr)
  return {
      "config": label,
      "wall_s": round(wall, 2),
      "instances": int(match.group(1)) if match else None,
      "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
      "peak_tree_rss_mb": round(peak_tree[0] / 1024, 1),
      "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
  }


def _sha256(paths):
  digest = hashlib.sha256()
  for path in paths:
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
  return digest.hexdigest()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs",
                      default="memory_w1,memory_w2,stream_1x,stream_20x")
  parser.add_argument("--work_dir", default="/tmp/cpd_bench")
  parser.add_argument("--corpus_dir",
                      default=os.path.join(SHARED, "data", "corpus",
                                           "janeaustenr"))
  parser.add_argument("--vocab_file",
                      default=os.path.join(SHARED, "data", "vocab",
                                           "uncased_vocab.txt"))
  parser.add_argument("--streaming_chunk_mb", default=None,
                      help="override the script's default chunk size")
  parser.add_argument("--check_against", default=None,
                      help="sha256 of memory_w1's output to compare with")
  parser.add_argument("--keep_outputs", action="store_true")
  options = parser.parse_args()

  corpus = sorted(glob.glob(os.path.join(options.corpus_dir, "*.txt")))
  if not corpus:
    sys.exit("no corpus files in %s" % options.corpus_dir)
  os.makedirs(options.work_dir, exist_ok=True)
  calibration = subprocess.run(
      [sys.executable, "-m", "timeit", "sum(range(10**6))"],
      capture_output=True, text=True).stdout.strip()
  print("machine: %d CPUs, python %s, timeit sum(range(1e6)): %s" % (
      os.cpu_count(), sys.version.split()[0], calibration))

  base = ["--vocab_file=" + options.vocab_file, "--do_lower_case=True",
          "--max_seq_length=128", "--max_predictions_per_seq=20",
          "--random_seed=12345", "--dupe_factor=10", "--masked_lm_prob=0.15",
          "--short_seq_prob=0.1", "--progress_interval_secs=0"]
  results = []
  for config in options.configs.split(","):
    output = os.path.join(options.work_dir, config + ".tfrecord")
    inputs = ",".join(corpus)
    extra = []
    if config.startswith("memory_w"):
      extra = ["--num_workers=" + config[len("memory_w"):]]
    elif config.startswith("stream_"):
      times = int(config[len("stream_"):-1])
      if times > 1:
        repeated = os.path.join(options.work_dir, "corpus_%dx.txt" % times)
        if not os.path.exists(repeated):
          with open(repeated, "wb") as out:
            for _ in range(times):
              for path in corpus:
                with open(path, "rb") as f:
                  shutil.copyfileobj(f, out)
                out.write(b"\n")
        inputs = repeated
      extra = ["--streaming"]
      if options.streaming_chunk_mb:
        extra.append("--streaming_chunk_mb=" + options.streaming_chunk_mb)
    else:
      sys.exit("unknown config %s" % config)
    result = run(["--input_file=" + inputs, "--output_file=" + output] +
                 base + extra, config)
    result["output_mb"] = round(os.path.getsize(output) / 1e6, 1)
    if config == "memory_w1":
      result["sha256"] = _sha256([output])
      if options.check_against:
        result["identical_to_reference"] = (
            result["sha256"] == options.check_against)
    if config == "memory_w1":
      result["speedup_vs_original_74s"] = round(74.0 / result["wall_s"], 2)
      result["rss_vs_original_955mb"] = round(result["peak_rss_mb"] / 955.0,
                                              3)
    if not options.keep_outputs:
      os.remove(output)
    print(json.dumps(result), flush=True)
    results.append(result)
  return results


if __name__ == "__main__":
  main()
