# coding=utf-8
"""This project's side of the CPU benchmark of ../shared/bench (W1, W2, W3).

Runs the three workloads of `../shared/bench/WORKLOADS.md` through the code
paths the scripts use, not through a special-cased copy:

  * W1_infer: `run_classifier.ClassifierTask` through `runner.predict` (the
    prediction loop of `run_classifier.py --do_predict`: encoder + pooler +
    the 2-way head and softmax, outputs fetched to the host as numpy). One
    timed step = one batch pulled from the `runner.predict` generator.
  * W2_finetune: `run_classifier.ClassifierTask` trained by the runner's
    training step (`runner.build_trainer`, the object `runner.train` drives:
    forward + backward, clip by global norm 1.0, AdamWeightDecay update,
    global_step increment), one step per call.
  * W3_pretrain: `run_pretraining.PretrainingTask` (masked LM gathered at the
    20 positions before the tied vocab projection + next sentence) through the
    same training step.

Inputs, shapes, FLOP counts, timing and the `bert-bench/1` JSON lines come
from `../shared/bench/benchlib.py` (set BERT_SHARED_DIR if ../shared is
elsewhere). The runtime options are the scripts' flags: `--use_xla`,
`--mixed_precision` (the `bf16` rows use our bf16 path: bfloat16 matmuls with
float32 accumulation, float32 variables, LayerNorm/softmax/losses in float32)
`--fused_blocks` and `--recompute`.

usage:
  python3 bench/bench_ours.py [--quick] [--sizes mini,base]
      [--workloads W1_infer,W2_finetune,W3_pretrain] [--dtypes fp32,bf16]
      [--bf16_w3] [--use_xla auto|on|off] [--xla_optimizer_update auto|on|off]
      [--fused_blocks auto|on|off] [--constant_kernels auto|on|off] [--recompute] [--warmup N] [--steps N] [--threads 2] [--out FILE]

`auto` (the default of each) runs what the scripts run with their default
flags: no `--use_xla`, and `--fused_blocks` / `--xla_optimizer_update` /
`--constant_kernels` as
`runner.fastest_settings` picks them for this CPU kind; `on`/`off`
force a setting (`--use_xla on` implies the XLA-compiled optimizer update). The benchlib plan
runs W3 in fp32 only; `--bf16_w3` adds the W3 bf16 row.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# Development aid: a directory of modified modules to measure before porting.
if os.environ.get("BENCH_OURS_OVERRIDE"):
  sys.path.insert(0, os.environ["BENCH_OURS_OVERRIDE"])
_SHARED_BENCH = os.path.join(os.environ.get(
    "BERT_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared")), "bench")
sys.path.insert(0, _SHARED_BENCH)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import benchlib as bl  # pylint: disable=g-import-not-at-top
import modeling  # pylint: disable=g-import-not-at-top
import run_classifier  # pylint: disable=g-import-not-at-top
import run_pretraining  # pylint: disable=g-import-not-at-top
import runner  # pylint: disable=g-import-not-at-top

IMPL = "ours"

def bert_config(size):
  d = bl.SIZES[size]
  return modeling.BertConfig(
      vocab_size=bl.VOCAB, hidden_size=d["H"], num_hidden_layers=d["L"],
      num_attention_heads=d["A"], intermediate_size=d["I"], hidden_act="gelu",
      hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
      max_position_embeddings=bl.MAX_POS, type_vocab_size=bl.TYPE_VOCAB,
      initializer_range=0.02)


def run_config(dtype, use_xla, recompute, xla_optimizer_update=None,
               fused_blocks=None, constant_kernels=None):
  """The scripts' RunConfig; None leaves a setting to the scripts' default."""
  return runner.RunConfig(
      output_dir=None, mixed_precision=dtype, use_xla=use_xla,
      xla_optimizer_update=xla_optimizer_update, seed=bl.SEED,
      recompute=recompute, fused_blocks=fused_blocks,
      constant_kernels=constant_kernels, iterations_per_loop=1,
      log_steps=1)


def features_of(workload, raw):
  """benchlib's numpy inputs -> the feature dict our input_fns produce."""
  feats = {
      "input_ids": raw["input_ids"],
      "input_mask": raw["input_mask"],
      "segment_ids": raw["segment_ids"],
  }
  if workload in ("W1_infer", "W2_finetune"):
    labels = raw.get("labels")
    if labels is None:
      labels = np.zeros(raw["input_ids"].shape[:1], np.int32)
    feats["label_ids"] = labels
    feats["is_real_example"] = np.ones_like(labels)
  else:
    for name in ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights",
                 "next_sentence_labels"):
      feats[name] = raw[name]
  return feats


def repeated_input_fn(feats):
  """An input_fn feeding the same batch every step (as the protocol says)."""

  def input_fn(params):
    del params
    return tf.data.Dataset.from_tensors(
        {k: tf.constant(v) for k, v in feats.items()}).repeat()

  return input_fn


def count_params(model):
  return int(sum(np.prod(v.shape) for v in model.named_variables().values()
                 if v.trainable))


def make_task(workload, size, cfg):
  config = bert_config(size)
  if workload == "W3_pretrain":
    return run_pretraining.PretrainingTask(config,
                                           options=cfg.encoder_options)
  return run_classifier.ClassifierTask(config, ["0", "1"],
                                       options=cfg.encoder_options)


def predict_step_fn(cfg, task, feats, batch):
  """One W1 step = one batch through the `runner.predict` generator, in the
  steady state of a long prediction job: with `--constant_kernels` the runner
  switches to constant kernels after CONSTANT_KERNELS_AFTER_BATCHES batches,
  here at once (the switch's one slower trace is part of the warm-up)."""
  runner.CONSTANT_KERNELS_AFTER_BATCHES = 0
  model, _, _ = runner.load_model(cfg, task)
  outputs = runner.predict(cfg, task, repeated_input_fn(feats), batch,
                           model=model)

  def step():
    for _ in range(batch):
      next(outputs)

  return step, model


def train_step_fn(cfg, task, feats, batch):
  """One W2/W3 step = one call of the runner's training step."""
  o = bl.OPT
  trainer = runner.build_trainer(
      cfg, task, learning_rate=o["lr"], num_train_steps=10**9,
      num_warmup_steps=0, train_batch_size=batch)
  iterator = trainer.make_iterator(repeated_input_fn(feats))

  def step():
    logs = trainer.run_steps(iterator, 1)
    float(logs["loss"].numpy())

  return step, trainer.model


def make_bench(options):
  """Returns benchlib's bench_fn(workload, size, dtype, warmup, steps)."""

  def bench(workload, size, dtype, warmup, steps):
    forced = {"auto": None, "on": True, "off": False}
    use_xla = bool(forced[options.use_xla])
    cfg = run_config(dtype, use_xla, options.recompute,
                     forced[options.xla_optimizer_update],
                     forced[options.fused_blocks],
                     forced[options.constant_kernels])
    xla_update = use_xla or cfg.setting("xla_optimizer_update")
    fused = cfg.setting("fused_blocks")
    runner.setup_determinism(cfg)
    task = make_task(workload, size, cfg)
    raw = bl.make_inputs(workload, size)
    feats = features_of(workload, raw)
    batch = bl.BATCH[workload]
    if workload == "W1_infer":
      step, model = predict_step_fn(cfg, task, feats, batch)
    else:
      step, model = train_step_fn(cfg, task, feats, batch)
    step()  # traces (and compiles with XLA); an extra untimed warm-up
    times = bl.time_steps(step, warmup, steps)
    notes = [
        f"use_xla={use_xla}" + (
            f", xla_optimizer_update={xla_update}" if workload != "W1_infer"
            else "") + f", fused_blocks={fused}" + (
            f", constant_kernels={cfg.setting('constant_kernels')}"
            if workload == "W1_infer" else "") + " (cpu kind "
        f"{runner.cpu_kind()})",
        f"mixed_precision={dtype}" + (
            " (bf16 matmuls, fp32 accumulation, fp32 variables; LayerNorm, "
            "softmax, losses and the optimizer in fp32)" if dtype == "bf16"
            else ""),
        "tanh gelu (the original's)",
    ]
    if options.recompute:
      notes.append("recompute=True (per-layer activation recomputation)")
    if workload == "W1_infer":
      notes.append("run_classifier predict path via runner.predict: encoder + "
                   "pooler + Dense(2) + softmax, probabilities fetched to numpy "
                   "(head: +1,538 params, negligible FLOPs)")
    elif workload == "W2_finetune":
      notes.append("run_classifier ClassifierTask + runner training step; "
                   "AdamWeightDecay (original: no bias correction, LayerNorm/"
                   "bias excluded from decay), lr schedule at ~1e-4")
    else:
      notes.append("run_pretraining PretrainingTask + runner training step; MLM "
                   "gathered at 20 positions before the tied decoder")
    return times, count_params(model), notes

  return bench


def main(argv=None):
  parser = argparse.ArgumentParser(add_help=False)
  parser.add_argument("--use_xla", default="auto", choices=["auto", "on", "off"])
  parser.add_argument("--xla_optimizer_update", default="auto",
                      choices=["auto", "on", "off"])
  parser.add_argument("--fused_blocks", default="auto",
                      choices=["auto", "on", "off"])
  parser.add_argument("--constant_kernels", default="auto",
                      choices=["auto", "on", "off"])
  parser.add_argument("--recompute", action="store_true")
  parser.add_argument("--bf16_w3", action="store_true",
                      help="also run W3_pretrain in bf16 (not in the plan)")
  parser.add_argument("--variant", default=None)
  options, rest = parser.parse_known_args(argv)
  args = bl.parse_args(rest)

  inter = int(os.environ.get("BENCH_TF_INTER", "1"))
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(inter)
  threads = dict(tf_intra=args.threads, tf_inter=inter,
                 TF_ENABLE_ONEDNN_OPTS=os.environ.get("TF_ENABLE_ONEDNN_OPTS",
                                                      "default"),
                 # runner sets it to true unless the caller chose.
                 TF_CPU_ALLOCATOR_USE_BFC=os.environ.get(
                     "TF_CPU_ALLOCATOR_USE_BFC"))
  versions = dict(tensorflow=tf.__version__, numpy=np.__version__)
  variant = options.variant
  if variant is None:
    parts = []
    if options.use_xla != "auto":
      parts.append(f"use_xla={options.use_xla}")
    if options.xla_optimizer_update != "auto":
      parts.append(f"xla_optimizer_update={options.xla_optimizer_update}")
    if options.fused_blocks != "auto":
      parts.append(f"fused_blocks={options.fused_blocks}")
    if options.constant_kernels != "auto":
      parts.append(f"constant_kernels={options.constant_kernels}")
    if options.recompute:
      parts.append("recompute")
    variant = ",".join(parts)
  bench = make_bench(options)
  bl.run_plan(IMPL, args, bench, versions, threads, variant=variant)
  if options.bf16_w3 and "W3_pretrain" in args.workloads:
    extra = argparse.Namespace(**vars(args))
    extra.workloads, extra.dtypes = ["W3_pretrain"], ["bf16"]
    for wl, size, dt, w, n in [
        (wl, size, "bf16", w, n) for wl, size, _, w, n in bl.plan(
            argparse.Namespace(**dict(vars(extra), dtypes=["fp32"])))]:
      load0 = bl.loadavg()
      try:
        times, params, notes = bench(wl, size, dt, w, n)
        rec = bl.record(IMPL, wl, size, dt, times, warmup=w, params=params,
                        threads=threads, versions=versions, notes=notes,
                        variant=variant, load_start=load0)
      except Exception as e:  # pylint: disable=broad-except
        rec = bl.record(IMPL, wl, size, dt, None, warmup=w, threads=threads,
                        versions=versions, variant=variant, status="error",
                        reason=f"{type(e).__name__}: {e}"[:500],
                        load_start=load0)
      bl.emit(rec, args.out)


if __name__ == "__main__":
  main()
