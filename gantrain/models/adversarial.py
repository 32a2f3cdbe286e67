"""The training step of the one-generator/one-discriminator families (gan, dcgan, cgan, cdcgan, acgan, sgan, infogan).

D's update: real and fake images (DiffAugment when on) through D; the adversarial pair on the
real/fake logits, with the configured targets; the family's extra terms (class heads, Q heads, the
labelled stream); the penalty. G's update: fresh fakes through D; the adversarial G loss toward
``g_target``, the family's extra terms, feature matching. ``joint`` is the tutorial's
simultaneous step: one forward pass feeds both losses.

Seeds are stateless and split the same way in every variant, so a step is a pure function of
(weights, batch, noise, seed): recorded values (tests/test_recorded_values.py) stay put.
"""

from __future__ import annotations

import tensorflow as tf

from gantrain.losses import LossPair, feature_matching_loss
from gantrain.models.plan import Losses, Plan, Update


def adversarial_plan(model, loss: LossPair, options) -> Plan:
    """``d_steps`` D updates on fresh batches, then a G update (fresh or reused noise)."""
    if options.feature_matching != "none":
        model.enable_features()
    d = Update("discriminator", lambda ctx: d_losses(model, loss, options, ctx), repeat=options.d_steps)
    g = Update("generator", lambda ctx: g_losses(model, loss, options, ctx), fresh_data=False, fresh_noise=not options.reuse_g_noise)
    return Plan((d, g), joint=lambda ctx: joint_losses(model, loss, options, ctx))


def d_losses(model, loss: LossPair, options, ctx) -> Losses:
    seeds = tf.random.experimental.stateless_split(ctx.seed, 3)
    aug = tf.random.experimental.stateless_split(seeds[0], 2)
    real_in, fake_in, real_out, fake_out = _forward(model, ctx, aug)
    return _d_terms(model, loss, options, ctx, real_in, fake_in, real_out, fake_out, seeds[2])


def g_losses(model, loss: LossPair, options, ctx) -> Losses:
    aug = tf.random.experimental.stateless_split(ctx.seed, 2)
    latent, real, labels = ctx.latent, ctx.batch["image"], ctx.batch.get("label")
    fake_out = model.discriminate(ctx.augment(model.generate(latent, training=True), aug[0]), latent.get("labels"), training=True)
    # D's view of the real batch only when feature matching asks for it: no extra forward pass otherwise.
    real_out_fn = lambda: model.discriminate(ctx.augment(real, aug[1]), labels, training=True)  # noqa: E731
    return _g_terms(model, loss, options, fake_out, real_out_fn, latent)


def joint_losses(model, loss: LossPair, options, ctx) -> dict:
    """Both losses from one forward pass, as the TensorFlow DCGAN tutorial's ``train_step``.

    G's gradient is taken through D's weights *before* this step's D update, and G(z), D(x),
    D(G(z)) are computed once instead of twice: about a third less work. It equals a D step
    followed by a G step on the pre-update D weights with the same noise only when D's forward
    pass is deterministic (no dropout: here both updates share one dropout mask) and the G loss
    needs no second look at the real batch; it never equals the alternating update, whose G step
    sees the updated D (and, by default, fresh noise).
    """
    seeds = tf.random.experimental.stateless_split(ctx.seed, 3)
    aug = tf.random.experimental.stateless_split(seeds[0], 2)
    real_in, fake_in, real_out, fake_out = _forward(model, ctx, aug)
    return {
        "discriminator": _d_terms(model, loss, options, ctx, real_in, fake_in, real_out, fake_out, seeds[2]),
        "generator": _g_terms(model, loss, options, fake_out, lambda: real_out, ctx.latent),
    }


def _forward(model, ctx, aug):
    latent, real, labels = ctx.latent, ctx.batch["image"], ctx.batch.get("label")
    fake = model.generate(latent, training=True)
    real_in, fake_in = ctx.augment(real, aug[0]), ctx.augment(fake, aug[1])
    real_out = model.discriminate(real_in, labels, training=True)
    fake_out = model.discriminate(fake_in, latent.get("labels"), training=True)
    return real_in, fake_in, real_out, fake_out


def _d_terms(model, loss: LossPair, options, ctx, real_in, fake_in, real_out, fake_out, seed) -> Losses:
    seeds = tf.random.experimental.stateless_split(seed, 2)
    labels = ctx.batch.get("label")
    if loss.uses_targets:
        real_target, fake_target = ctx.targets(tf.shape(real_in)[0], seeds[0])
        adversarial = loss.d_loss(real_out["logits"], fake_out["logits"], real_target, fake_target)
    else:
        adversarial = loss.d_loss(real_out["logits"], fake_out["logits"])
    terms = {"adv_loss": adversarial, **model.d_extra_losses(real_out, fake_out, labels, ctx.latent, ctx.labeled)}
    critic = lambda x: model.discriminate(x, labels, training=True)["logits"]  # noqa: E731
    terms.update(ctx.penalty(critic, real_in, fake_in, seeds[1]))
    metrics = {
        # Mean D(x) and D(G(z)) as probabilities (for critics: of the raw score): 0.5/0.5 is the equilibrium.
        "real": tf.reduce_mean(tf.sigmoid(tf.cast(real_out["logits"], tf.float32))),
        "fake": tf.reduce_mean(tf.sigmoid(tf.cast(fake_out["logits"], tf.float32))),
    }
    return Losses(terms, metrics)


def _g_terms(model, loss: LossPair, options, fake_out, real_out_fn, latent) -> Losses:
    if loss.uses_targets:
        adversarial = loss.g_loss(fake_out["logits"], options.g_target)
    else:
        adversarial = loss.g_loss(fake_out["logits"])
    terms = dict(model.g_extra_losses(fake_out, latent))
    if options.feature_matching != "none":
        terms["feature_matching"] = options.feature_matching_weight * feature_matching_loss(real_out_fn()["features"], fake_out["features"])
    terms["adv_loss"] = adversarial  # last: the order the sum had before the generic trainer
    return Losses(terms, unsummed=("adv_loss",) if options.feature_matching == "replace" else ())
