# coding=utf-8
"""Cuts a SQuAD file into article ranges, for the by-hand learning runs.

Only dev sets are available here, so the learning runs fine-tune on some
articles of a dev file and evaluate on the others:

  python3 bench/squad_split.py --input=dev-v1.1.json --articles=0-39 \
      --train --output=/tmp/squad/train-0-39.json
  python3 bench/squad_split.py --input=dev-v1.1.json --articles=40-47 \
      --output=/tmp/squad/dev-40-47.json

`--train` keeps only the first answer of every answerable question (the
original `read_squad_examples` requires exactly one answer for training, as in
the official train files); the evaluation split keeps every answer.
"""

import argparse
import copy
import json

import tensorflow as tf


def parse_range(text):
  first, _, last = text.partition("-")
  return int(first), int(last or first)


def split(data, first, last, train):
  articles = copy.deepcopy(data["data"][first:last + 1])
  if train:
    for article in articles:
      for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
          if qa.get("answers"):
            qa["answers"] = qa["answers"][:1]
  return {"version": data.get("version", ""), "data": articles}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--input", required=True)
  parser.add_argument("--articles", required=True,
                      help="inclusive article range, e.g. 0-39")
  parser.add_argument("--output", required=True)
  parser.add_argument("--train", action="store_true",
                      help="keep one answer per question (training format)")
  args = parser.parse_args()
  with tf.io.gfile.GFile(args.input, "r") as f:
    data = json.load(f)
  first, last = parse_range(args.articles)
  out = split(data, first, last, args.train)
  num_questions = sum(len(p["qas"]) for a in out["data"]
                      for p in a["paragraphs"])
  with tf.io.gfile.GFile(args.output, "w") as f:
    json.dump(out, f)
  print("%s: articles %d-%d, %d questions -> %s" %
        (args.input, first, last, num_questions, args.output))


if __name__ == "__main__":
  main()
