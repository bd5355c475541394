"""A tiny regression task for exercising runner.py quickly (not a test module)."""
import collections

import numpy as np
import tensorflow as tf


class ToyModel(tf.Module):
  """y = x @ kernel + bias, with original-style names."""

  def __init__(self, width=4, seed=0):
    super().__init__()
    rng = np.random.RandomState(seed)
    self.kernel = tf.Variable(rng.normal(0, 0.1, [width, 1]).astype(np.float32),
                              name="toy/dense/kernel")
    self.bias = tf.Variable(np.zeros([1], np.float32), name="toy/dense/bias")

  def named_variables(self):
    return collections.OrderedDict([("toy/dense/kernel", self.kernel),
                                    ("toy/dense/bias", self.bias)])

  def __call__(self, x):
    return tf.matmul(x, self.kernel)[:, 0] + self.bias[0]


class ToyTask(object):
  """Regression loss, a weighted MSE metric and a prediction."""

  def __init__(self, width=4):
    self.width = width

  def create_model(self):
    return ToyModel(self.width)

  def compute_loss(self, model, features, training):
    del training
    err = model(features["x"]) - features["y"]
    loss = tf.reduce_mean(tf.square(err))
    return loss, {"mse": loss}

  def eval_metrics(self, model, features):
    err = model(features["x"]) - features["y"]
    n = tf.cast(tf.size(err), tf.float32)
    return {"sq_err": (tf.reduce_sum(tf.square(err)), n),
            "loss": (tf.math.divide_no_nan(tf.reduce_sum(tf.square(err)), n),
                     tf.cast(n > 0, tf.float32))}

  def predict(self, model, features):
    return {"id": features["id"], "y_hat": model(features["x"])}


def make_data(n=64, width=4, seed=1):
  rng = np.random.RandomState(seed)
  x = rng.normal(size=[n, width]).astype(np.float32)
  w = rng.normal(size=[width]).astype(np.float32)
  y = (x @ w + 0.5).astype(np.float32)
  return {"x": x, "y": y, "id": np.arange(n, dtype=np.int32)}


def input_fn_builder(data, is_training, drop_remainder=True):
  def input_fn(params):
    ds = tf.data.Dataset.from_tensor_slices(data)
    ctx = params.get("input_context")
    if ctx is not None and ctx.num_input_pipelines > 1:
      ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    if is_training:
      ds = ds.repeat()
    return ds.batch(params["batch_size"], drop_remainder=drop_remainder)
  return input_fn
