# coding=utf-8
# Copyright 2026 The BERT-on-TF2 project authors. Written for this project.
#
# Licensed under the Apache License, Version 2.0 (the "License"); see the
# LICENSE of this project.
"""Writes the bert_config.json files of the 24 small BERT shapes.

Turc et al., "Well-Read Students Learn Better" (2019), released uncased
English BERTs with L in {2, 4, 6, 8, 10, 12} layers and hidden size H in
{128, 256, 512, 768}, with A = H / 64 attention heads and an intermediate
(feed-forward) size of 4H; everything else is BERT-Base's (vocab 30522, 512
positions, 2 token types, dropout 0.1, initializer range 0.02, gelu). These
configs let a student of any of those shapes be pre-trained from scratch
(`run_pretraining.py --bert_config_file=...`) or described for distillation.

Run from anywhere: python configs/small_bert/make_configs.py
"""

import json
import os

LAYERS = (2, 4, 6, 8, 10, 12)
HIDDEN = (128, 256, 512, 768)


def small_bert_config(num_layers, hidden_size):
  """The bert_config dict of the L=num_layers, H=hidden_size model."""
  return {
      "attention_probs_dropout_prob": 0.1,
      "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1,
      "hidden_size": hidden_size,
      "initializer_range": 0.02,
      "intermediate_size": 4 * hidden_size,
      "max_position_embeddings": 512,
      "num_attention_heads": hidden_size // 64,
      "num_hidden_layers": num_layers,
      "type_vocab_size": 2,
      "vocab_size": 30522,
  }


def file_name(num_layers, hidden_size):
  return "bert_config_L-%d_H-%d_A-%d.json" % (num_layers, hidden_size,
                                              hidden_size // 64)


def main():
  here = os.path.dirname(os.path.abspath(__file__))
  for num_layers in LAYERS:
    for hidden_size in HIDDEN:
      path = os.path.join(here, file_name(num_layers, hidden_size))
      with open(path, "w") as f:
        json.dump(small_bert_config(num_layers, hidden_size), f, indent=2,
                  sort_keys=True)
        f.write("\n")
  print("wrote %d configs in %s" % (len(LAYERS) * len(HIDDEN), here))


if __name__ == "__main__":
  main()
