# coding=utf-8
# Copyright 2026 The BERT-on-TF2 project authors. Written for this project.
#
# Licensed under the Apache License, Version 2.0 (the "License"); see the
# LICENSE of this project.
"""Builds an unlabeled sentence-pair transfer set for distilling MRPC.

The student of a distillation run learns the teacher's labels on extra
unlabeled examples (`run_classifier.py --transfer_data_dir`). MRPC has only
3,668 training pairs; this tool takes sentence pairs from other GLUE sets in
../shared/data (their labels are dropped) and writes them in MRPC's training
layout (`Quality  #1 ID  #2 ID  #1 String  #2 String`, quality "-"):

  * STS-B train.tsv: news headlines, image captions and forum sentences paired
    at every degree of similarity (0-5), the closest thing to MRPC's
    paraphrase / not-paraphrase pairs;
  * RTE train.tsv: a premise and a hypothesis about it (news and Wikipedia),
    pairs that overlap a lot without being paraphrases.

Pairs are shuffled with --seed and the first --max_examples kept; pairs that
also occur in MRPC (either order) are left out.

  python tools/make_transfer_set.py --glue_dir=../shared/data/glue \\
      --output_dir=/tmp/mrpc_transfer --max_examples=4000
"""

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # pylint: disable=g-import-not-at-top


def read_pairs(path, column_a, column_b):
  """Sentence pairs of a GLUE TSV file (header skipped, no quote handling)."""
  pairs = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f):
      row = line.rstrip("\r\n").split("\t")
      if n == 0 or len(row) <= max(column_a, column_b):
        continue
      a, b = row[column_a].strip(), row[column_b].strip()
      if a and b:
        pairs.append((a, b))
  return pairs


def build(glue_dir, max_examples, seed):
  """The shuffled transfer pairs, without MRPC's own pairs."""
  pairs = (read_pairs(os.path.join(glue_dir, "STS-B", "train.tsv"), 7, 8) +
           read_pairs(os.path.join(glue_dir, "RTE", "train.tsv"), 1, 2))
  mrpc = set()
  for name in ("train.tsv", "dev.tsv", "test.tsv"):
    path = os.path.join(glue_dir, "MRPC", name)
    if os.path.exists(path):
      for a, b in read_pairs(path, 3, 4):
        mrpc.update([(a, b), (b, a)])
  pairs = [p for p in pairs if p not in mrpc]
  random.Random(seed).shuffle(pairs)
  return pairs[:max_examples] if max_examples > 0 else pairs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--glue_dir", required=True,
                      help="directory with STS-B/, RTE/ and MRPC/")
  parser.add_argument("--output_dir", required=True,
                      help="where to write train.tsv")
  parser.add_argument("--max_examples", type=int, default=4000,
                      help="keep this many pairs (0: all)")
  parser.add_argument("--seed", type=int, default=12345)
  args = parser.parse_args()
  pairs = build(args.glue_dir, args.max_examples, args.seed)
  os.makedirs(args.output_dir, exist_ok=True)
  path = os.path.join(args.output_dir, "train.tsv")
  with common.atomic_write(path) as f:
    f.write("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n")
    for i, (a, b) in enumerate(pairs):
      f.write("-\tt%d\tt%d\t%s\t%s\n" % (2 * i, 2 * i + 1, a, b))
  print("wrote %d pairs to %s" % (len(pairs), path))


if __name__ == "__main__":
  main()
