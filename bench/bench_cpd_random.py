"""CPU time of create_pretraining_data's in-memory generation: this tree
against another revision of the script (e.g. one with a different random
stream implementation), interleaved, with the output records compared.

It imports `create_pretraining_data.py` from the working tree and the same
file from `--baseline_rev` (via `git show`), runs the original pipeline (one
worker) of each on the same corpus and flags, alternating A/B/B/A, and prints
the process CPU seconds of each run, the median per side and whether the
written files are byte-identical. CPU seconds (not wall) keep the figure
usable on a shared machine.

Measured on 5 Dec 2026 (2-core Xeon with AVX-512, three Austen novels,
dupe_factor 5, 4 runs each): the replay class FastRandom of ad7e71e 2.75 s,
`random.Random` itself 2.42 s (12 % less), identical records.

Usage:
  python bench/bench_cpd_random.py --baseline_rev=ad7e71e [--runs=4]
"""

import argparse
import glob
import hashlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("BERT_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
sys.path.insert(0, ROOT)


def _load(path, name):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _run(module, corpus, work_dir, tag):
  settings = module._load_settings()  # pylint: disable=protected-access
  path = os.path.join(work_dir, tag + ".tfrecord")
  output = module._OutputFiles([path])  # pylint: disable=protected-access
  start = time.process_time()
  module._run_in_memory(settings, corpus, output, 1, 0)  # pylint: disable=protected-access
  seconds = time.process_time() - start
  output.commit()
  with open(path, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  return seconds, digest


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--baseline_rev", required=True)
  parser.add_argument("--runs", type=int, default=4)
  parser.add_argument("--num_files", type=int, default=3)
  parser.add_argument("--dupe_factor", type=int, default=5)
  args = parser.parse_args()

  corpus = sorted(glob.glob(os.path.join(SHARED, "data", "corpus", "janeaustenr",
                                         "*.txt")))[:args.num_files]
  vocab = os.path.join(SHARED, "data", "vocab", "uncased_vocab.txt")
  work_dir = tempfile.mkdtemp(prefix="bench_cpd_random-")
  old_path = os.path.join(work_dir, "cpd_baseline.py")
  with open(old_path, "wb") as f:
    f.write(subprocess.check_output(
        ["git", "show", args.baseline_rev + ":create_pretraining_data.py"],
        cwd=ROOT))
  current = _load(os.path.join(ROOT, "create_pretraining_data.py"), "cpd_current")
  baseline = _load(old_path, "cpd_baseline")
  from absl import flags  # pylint: disable=g-import-not-at-top
  current.define_flags()   # both modules read the same absl FLAGS
  flags.FLAGS(["bench", "--input_file=" + ",".join(corpus),
               "--output_file=unused", "--vocab_file=" + vocab,
               "--do_lower_case=true", "--dupe_factor=%d" % args.dupe_factor,
               "--progress_interval_secs=0"])
  baseline.FLAGS = current.FLAGS

  seconds = {"current": [], "baseline": []}
  digests = set()
  for i in range(args.runs):
    order = ("baseline", "current") if i % 2 == 0 else ("current", "baseline")
    for tag in order:
      module = current if tag == "current" else baseline
      s, digest = _run(module, corpus, work_dir, tag)
      seconds[tag].append(s)
      digests.add(digest)
      print("%-8s %.2f CPU s  sha256 %s" % (tag, s, digest[:16]), flush=True)
  for tag, values in seconds.items():
    print("%s: median %.2f CPU s" % (tag, statistics.median(values)))
  print("records identical: %s" % (len(digests) == 1))


if __name__ == "__main__":
  main()
