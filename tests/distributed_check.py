"""Runs a short training under a chosen strategy and prints its loss trajectory.

Used by tests/test_runner.py in a subprocess, because logical CPU devices and
TF_CONFIG must be set before TensorFlow starts:

  python3 tests/distributed_check.py MODE OUTPUT_DIR [TASK]

MODE: `single` (default strategy), `mirrored` (MirroredStrategy over 2 logical
CPUs) or `worker` (MultiWorkerMirroredStrategy; TF_CONFIG set by the caller).
TASK: `toy` (default) or `pretrain` (the real pretraining task on the reference
batches of ../shared/reference/model/pretrain_tiny).
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # pylint: disable=g-import-not-at-top


def main():
  mode, output_dir = sys.argv[1], sys.argv[2]
  task_name = sys.argv[3] if len(sys.argv) > 3 else "toy"
  if mode == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  elif mode == "worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  else:
    strategy = None

  import runner  # pylint: disable=g-import-not-at-top
  losses = []

  class Recorder(runner.RunConfig):
    pass

  cfg = runner.RunConfig(output_dir, iterations_per_loop=1, log_steps=1,
                         save_checkpoints_steps=1000, strategy=strategy,
                         seed=1, deterministic=True)
  if task_name == "pretrain":
    import numpy as np  # pylint: disable=g-import-not-at-top
    import modeling  # pylint: disable=g-import-not-at-top
    import run_pretraining  # pylint: disable=g-import-not-at-top
    ref = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared",
                       "reference", "model", "pretrain_tiny")
    ref = os.environ.get("PRETRAIN_TINY_DIR", ref)
    config = modeling.BertConfig.from_json_file(os.path.join(ref,
                                                             "bert_config.json"))
    batches = dict(np.load(os.path.join(ref, "batches.npz")))
    # 20 batches of 8 -> one stream of 160 examples, re-batched by the loop.
    data = {k: v.reshape((-1,) + v.shape[2:]) for k, v in batches.items()}
    task = run_pretraining.PretrainingTask(config)
    steps, batch, lr, warmup = 10, 8, 1e-4, 3
    init = os.path.join(ref, "model.ckpt-0")
  else:
    import runner_toy  # pylint: disable=g-import-not-at-top
    data = runner_toy.make_data()
    data.pop("id")
    task = runner_toy.ToyTask()
    steps, batch, lr, warmup, init = 10, 8, 0.1, 3, None

  def input_fn(params):
    ds = tf.data.Dataset.from_tensor_slices(data)
    ctx = params.get("input_context")
    if ctx is not None and ctx.num_input_pipelines > 1:
      # Worker k takes every n-th example: the union of the workers' batches is
      # exactly the single-device global batch.
      ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.repeat().batch(params["batch_size"], drop_remainder=True)

  original_report = runner._Progress.report  # pylint: disable=protected-access

  def report(self, step, scalars):
    losses.append(float(scalars["loss"]))
    return original_report(self, step, scalars)

  runner._Progress.report = report  # pylint: disable=protected-access
  runner.train(cfg, task, input_fn, steps, warmup, lr, init_checkpoint=init,
               train_batch_size=batch)
  print("LOSSES " + json.dumps(losses))


if __name__ == "__main__":
  main()
