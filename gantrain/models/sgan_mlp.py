"""Semi-supervised GAN with the MNIST networks of Salimans et al. (2016), "Improved Techniques for Training GANs".

The networks, losses and initialisation of their reference code (openai/improved-gan,
``mnist_svhn_cifar10/train_mnist_feature_matching.py`` with ``mnist_svhn_cifar10/nn.py``), which
reached 0.93% test error on MNIST with 100 labels. The training step is :class:`SGANModel`'s
(D's real/fake logit is ``logsumexp`` of its class logits, plus the supervised cross-entropy on a
stream of labelled batches); the reference trains G by feature matching alone, which the config
sets (configs/sgan_mlp_mnist.yaml: ``loss.feature_matching: replace``).

- G: z -> [Dense without bias -> batch norm without a learned scale -> softplus] per ``g_widths``
  (``nn.batch_norm(DenseLayer(..., softplus), g=None)``: the softplus comes *after* the norm, whose
  offset replaces the dense layer's bias) -> weight-normalised Dense to every pixel with a trainable
  scale (``nn.l2normalize``) -> sigmoid. Batch norm as ``nn.BatchNormLayer``: epsilon 1e-6 inside
  the root, running averages with momentum 0.9.
- D: flattened image -> Gaussian noise -> [weight-normalised Dense + ReLU -> Gaussian noise] per
  ``d_widths`` -> weight-normalised Dense to the class logits (``nn.DenseLayer``). Weights
  ~ N(0, 0.1), biases 0, scales 1 before the data-dependent initialisation; the hidden layers'
  scales are then frozen (``train_scale=False``), the head's is trained (``train_scale=True``).
- Feature matching compares the output of the last hidden layer's ReLU, *before* the noise that
  follows it (``layers[-3]``), which this family names ``features``.

Deliberate differences from the reference:

- Images are in [-1, 1] here, [0, 1] there. G ends in ``2 * sigmoid(a) - 1`` (= ``tanh(a / 2)``),
  exactly the reference's pixels mapped to [-1, 1]; D adds its input noise in [-1, 1] units
  (``input_noise`` 0.6 = the reference's 0.3) and maps the noisy image back to [0, 1] before its
  first layer, so D computes exactly the reference's function of the reference's pixels (feeding
  [-1, 1] pixels to a weight-normalised layer would add a term ``sum(v) / ||v||`` that depends on
  the weights and so changes their gradient).
- z ~ N(0, 1) as every family here (``sample_latent``), the reference draws U(0, 1). G's first
  layer is followed by batch norm, which removes each unit's mean and scale, so only the shape of
  the projections' distribution differs, and with 100 inputs those are close to normal either way.
- The data-dependent initialisation runs on the first batch D sees in training (the first D
  step's real, unlabelled batch: data.batch_size images, noise on) instead of 500 training images
  before training; the maths is the reference's (see :class:`WeightNormDense`).
- The reference scores the test set with an exponential moving average of D's trainable weights
  (``disc_param_avg``, 0.9999 from zero); here the accuracy logged at each checkpoint is the live
  D's. Its G step draws a second, independent real batch for feature matching; here it reuses the
  D step's (adversarial.py). Its G batch-norm running averages are never updated (its
  ``bn_updates`` are not applied); here they are (momentum 0.9, biased batch variance), which
  changes only sampling with ``training=False``.
- Known limitation: under a distribution strategy with several replicas, Keras's GaussianNoise
  draws the same noise on every replica (as its Dropout does), so D's noise repeats across the
  replicas' slices of the global batch; single-device training, the default here, is unaffected.
- The loss scales (the reference's D loss is half of ours, its feature matching a mean where ours
  is a sum) are constant factors: see ``supervised_weight`` below and configs/sgan_mlp_mnist.yaml.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

from gantrain.models.base import LATENT_DIM, Family
from gantrain.models.layers import batch_norm
from gantrain.models.sgan import SGANModel
from gantrain.registry import MODELS
from gantrain.schema import Field

FEATURES = "features"  # the layer whose output feature matching compares (the last hidden ReLU)

# The reference's D loss is loss_lab + loss_unl with
#   loss_lab = mean CE(labelled batch)
#   loss_unl = -0.5 mean lse(unl) + 0.5 mean softplus(lse(unl)) + 0.5 mean softplus(lse(fake))
#            = 0.5 [mean softplus(-lse(unl)) + mean softplus(lse(fake))]     (softplus(l) - l = softplus(-l))
# where lse = logsumexp of the class logits. Ours is the non_saturating D loss on the same logits,
# mean softplus(-lse(real)) + mean softplus(lse(fake)) (losses.bce_d_loss, hard targets), plus
# supervised_weight x mean CE. Ours = 2 x the reference's exactly when supervised_weight = 2.
SUPERVISED_WEIGHT = 2.0

SCHEMA = {
    "latent_dim": LATENT_DIM,
    "g_widths": Field([500, 500], "generator hidden widths (dense, batch norm without scale, softplus)", "int_list", min=1),
    "d_widths": Field([1000, 500, 250, 250, 250], "discriminator hidden widths (weight-normalised dense + ReLU, then Gaussian noise); "
                      "the last one's ReLU output is the feature-matching layer", "int_list", min=1),
    "input_noise": Field(0.6, "std of the Gaussian noise added to D's input in training, in image units [-1, 1] (the reference's 0.3 on "
                         "[0, 1] pixels)", "float", min=0),
    "hidden_noise": Field(0.5, "std of the Gaussian noise added after each hidden layer of D in training", "float", min=0),
    "init_scale": Field(1.0, "data-dependent initialisation: std of each D pre-activation on the first training batch (1 in the reference)",
                        "float", min=0, min_exclusive=True),
    "supervised_weight": Field(SUPERVISED_WEIGHT, "weight of the supervised cross-entropy on labelled batches (2: our D loss is then twice "
                               "the reference's loss_lab + loss_unl)", "float", min=0),
}


@keras.saving.register_keras_serializable(package="gantrain")
class WeightNormDense(layers.Layer):
    """Weight-normalised dense layer (Salimans & Kingma 2016): ``y = act(g * (x . v / ||v||) + b)``.

    ``v`` (``kernel``, (inputs, units)) is normalised per unit over its inputs; ``g`` (``scale``) and
    ``b`` (``bias``) are per unit. ``train_scale``: whether the optimizer trains ``g``. ``epsilon``:
    added to ``||v||^2`` under the root (0 in the reference's D layers, 1e-6 in its ``l2normalize``).

    Data-dependent initialisation (``data_init``, the reference's ``nn.DenseLayer`` with
    ``init=True``): the first call with ``training=True`` sets, per unit, with
    ``t = x . v / ||v||`` over that batch, ``g = init_scale / std(t)`` and ``b = -mean(t) * g``
    (population std), so that batch's pre-activations have mean 0 and std ``init_scale``, and then
    computes its output with them. A non-trainable ``initialized`` flag (a weight, so checkpoints
    carry it and a resumed run does not initialise again) makes this happen once; it runs inside
    ``tf.function`` and XLA (``tf.cond``). Building the layer and calls with ``training`` false or
    None never initialise. A unit whose ``t`` is constant over the batch keeps ``g = init_scale``.
    Under a distribution strategy the moments are those of the global batch (summed over the
    replicas), so every replica sets the same values.

    The normalised kernel is computed in float32 from the float32 variables; the matmul runs in the
    layer's compute dtype, the initialisation's moments in float32.
    """

    def __init__(self, units: int, activation=None, train_scale: bool = False, data_init: bool = True, init_scale: float = 1.0,
                 epsilon: float = 0.0, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.train_scale, self.data_init = units, train_scale, data_init
        self.init_scale, self.epsilon = float(init_scale), float(epsilon)
        self.activation = keras.activations.get(activation)
        # None: the reference D's lasagne.init.Normal(0.1). With Adam the size of v sets how fast its
        # direction turns, so the std matters although the layer normalises v.
        self.kernel_initializer = keras.initializers.get(kernel_initializer or keras.initializers.RandomNormal(stddev=0.1))

    def build(self, input_shape):
        kw = dict(autocast=False)
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer=self.kernel_initializer, name="kernel", **kw)
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", trainable=self.train_scale, name="scale", **kw)
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias", **kw)
        if self.data_init:
            # float32 0/1 rather than bool: every variable of a network stays a float, as code that
            # copies or checks weights expects.
            self.initialized = self.add_weight(shape=(), initializer="zeros", trainable=False, name="initialized", **kw)

    def direction(self):
        """v / ||v||, per unit (float32)."""
        v = tf.convert_to_tensor(self.kernel)
        return v / tf.sqrt(tf.reduce_sum(tf.square(v), axis=0) + self.epsilon)

    def call(self, inputs, training=None):
        t = tf.matmul(inputs, tf.cast(self.direction(), inputs.dtype))  # x . v / ||v||
        if training and self.data_init:
            self._initialize_once(tf.cast(t, tf.float32))
        # g and b are read after the initialisation: automatic control dependencies order the reads after its cond.
        return self.activation(t * tf.cast(tf.convert_to_tensor(self.scale), t.dtype) + tf.cast(tf.convert_to_tensor(self.bias), t.dtype))

    def _initialize_once(self, t):
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            tf.cond(self.initialized > 0, lambda: None, lambda: self._initialize(*tf.nn.moments(t, axes=[0])))
            return
        # Several replicas: the moments of the global batch, so that every replica sets the same g
        # and b (the hidden g are never trained: replicas initialised on their own slices would
        # differ for good). A cross-replica sum cannot sit inside tf.cond, so on several replicas
        # it runs on every training call.
        sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.concat([tf.reduce_sum(t, axis=0), [tf.cast(tf.shape(t)[0], tf.float32)]], 0))
        mean = sums[:-1] / sums[-1]
        variance = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.reduce_sum(tf.square(t - mean), axis=0)) / sums[-1]
        tf.cond(self.initialized > 0, lambda: None, lambda: self._initialize(mean, variance))

    def _initialize(self, mean, variance):
        std = tf.sqrt(variance)
        g = self.init_scale / tf.where(std > 0, std, 1.0)
        self.scale.assign(g)
        self.bias.assign(-mean * g)
        self.initialized.assign(1.0)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation),
                "train_scale": self.train_scale, "data_init": self.data_init, "init_scale": self.init_scale, "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def _batch_norm_without_scale() -> layers.Layer:
    """``nn.batch_norm(..., g=None)``: a learned offset but no scale, epsilon 1e-6, running averages with momentum 0.9.

    Made from layers.batch_norm's configuration so it is synchronised across replicas when that one is.
    """
    config = {k: v for k, v in batch_norm(0.9).get_config().items() if k != "name"}
    return layers.BatchNormalization.from_config({**config, "scale": False, "epsilon": 1e-6})


def generator(z, image_shape: tuple, widths) -> keras.Model:
    x = z
    for width in widths:
        x = layers.Dense(width, use_bias=False)(x)  # no bias: the batch-norm offset right after replaces it
        x = _batch_norm_without_scale()(x)
        x = layers.Activation("softplus")(x)
    x = WeightNormDense(math.prod(image_shape), train_scale=True, data_init=False, epsilon=1e-6, kernel_initializer="glorot_uniform")(x)
    x = layers.Activation("sigmoid")(x)  # the reference's pixels in [0, 1] ...
    x = layers.Rescaling(2.0, offset=-1.0)(x)  # ... mapped to our [-1, 1]: 2 sigmoid(a) - 1 = tanh(a / 2)
    return keras.Model(z, layers.Reshape(image_shape)(x), name="generator")


def discriminator(images, num_classes: int, params: dict) -> keras.Model:
    x = layers.Flatten()(images)
    x = layers.GaussianNoise(params["input_noise"])(x)
    x = layers.Rescaling(0.5, offset=0.5)(x)  # back to the reference's [0, 1] pixels (noise 0.6 -> 0.3)
    widths = params["d_widths"]
    for i, width in enumerate(widths):
        name = FEATURES if i == len(widths) - 1 else None
        x = WeightNormDense(width, activation="relu", init_scale=params["init_scale"], name=name)(x)
        x = layers.GaussianNoise(params["hidden_noise"])(x)
    head = WeightNormDense(max(num_classes, 1), train_scale=True, init_scale=params["init_scale"], name="class_logits")
    return keras.Model(images, head(x), name="discriminator")


class SGANMLPModel(SGANModel):
    def enable_features(self, layer: str | None = None) -> None:
        """Feature matching on the last hidden ReLU (the reference's ``layers[-3]``), not on the
        noisy input of the head that the base class would take."""
        super().enable_features(layer or FEATURES)


class SGanMLP(Family):
    roles = ("image", "label")  # the class of each real image

    def build(self, params, image_shape, num_classes):
        z = keras.Input((params["latent_dim"],), name="z")
        images = keras.Input(image_shape, name="images")
        return SGANMLPModel(generator(z, image_shape, params["g_widths"]), discriminator(images, num_classes, params),
                            params["latent_dim"], num_classes, supervised_weight=params["supervised_weight"])


MODELS.register("sgan_mlp", description="semi-supervised GAN with Salimans et al.'s MNIST networks: weight-normalised MLP D with "
                "Gaussian noise, feature-matching G", schema=SCHEMA)(SGanMLP())
