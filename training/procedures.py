"""The published training procedures of the four reproduced systems, plus a generic default.

Each procedure takes a freshly built model and the data, trains it in place, and returns a log
of what it did (phases, epochs run, best validation loss) for the model card.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.core._keras import keras, tf
from detector.core.recipes import is_head_layer
from detector.core.spec import ModelSpec
from training.augment import Compose, GeometricColourAugment, RandomJpeg, RobustAugment
from training.balance import sample_weights
from training.config import TrainConfig
from training.datasets import BatchSequence, ImageSet, preprocess, targets

log = logging.getLogger(__name__)


@dataclass
class TrainingContext:
    """What a procedure needs besides the model."""

    config: TrainConfig
    spec: ModelSpec
    train: ImageSet
    val: ImageSet
    workdir: Path
    strategy: Any
    verbose: int = 1

    def sequence(self, augment=None, seed_offset: int = 0) -> BatchSequence:
        # random native crops already crop; cropping further would force an upscale
        native = self.spec.preprocessing.resize == "native_crop"
        c = self.config
        quality = (c.jpeg_quality_min, c.jpeg_quality_max)
        robust = RobustAugment(
            p_jpeg=0.0 if c.jpeg_last else c.jpeg_probability,
            jpeg_quality=quality,
            p_crop=0.0 if native else RobustAugment.p_crop,
        )
        last = RandomJpeg(c.jpeg_probability, quality) if c.jpeg_last else None
        steps = [robust, augment, last] if c.robust_augment else [augment]
        steps = [s for s in steps if s is not None]
        return BatchSequence(
            self.train,
            self.spec,
            batch_size=self.config.batch_size,
            augment=Compose(*steps) if steps else None,
            seed=self.config.seed + seed_offset,
            steps=self.config.steps_per_epoch,
            weights=self.weights(),
        )

    def weights(self) -> np.ndarray | None:
        """Content-balancing weights when the training data holds wild or control images."""
        if not self.config.balance_content or set(self.train.origins) <= {"package"}:
            return None
        return sample_weights(self.train.labels, self.train.origins, self.train.contents)

    def validation(self) -> tuple[np.ndarray, np.ndarray]:
        return preprocess(self.val.images, self.spec), targets(self.val.labels, self.spec.output)


def loss_for(spec: ModelSpec, label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The published loss for a model's output convention."""
    if spec.output == "softmax_fake_real":
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)


def set_backbone_trainable(model: keras.Model, trainable: bool) -> int:
    """Freeze or unfreeze every backbone layer; returns how many layers were changed."""
    changed = 0
    for layer in model.layers:
        if not is_head_layer(layer.name) and layer.weights:
            layer.trainable = trainable
            changed += 1
    return changed


def freeze_early_layers(model: keras.Model, fraction: float) -> list[str]:
    """Freeze the first ``fraction`` of the backbone's layers with weights, in graph order (the
    early, generic stages); frozen batch normalisation layers keep their statistics. Returns the
    names of the frozen layers."""
    backbone = [layer for layer in model.layers if not is_head_layer(layer.name) and layer.weights]
    frozen = backbone[: round(fraction * len(backbone))]
    for layer in frozen:
        layer.trainable = False
    return [layer.name for layer in frozen]


def _callbacks(ctx: TrainingContext, patience: int, tag: str, reduce_lr: bool = True) -> list:
    checkpoint = ctx.workdir / f"best_{tag}.weights.h5"
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, restore_best_weights=True, verbose=ctx.verbose
        ),
        keras.callbacks.ModelCheckpoint(
            str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True
        ),
    ]
    if reduce_lr:
        lr_patience = ctx.config.lr_patience or max(1, patience // 2)
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.1, patience=lr_patience, verbose=ctx.verbose
            )
        )
    return callbacks


def _fit(
    model,
    ctx: TrainingContext,
    *,
    epochs: int,
    lr: float,
    loss,
    tag: str,
    patience: int,
    augment=None,
    seed_offset: int = 0,
    reduce_lr: bool = True,
) -> dict[str, Any]:
    done_weights = ctx.workdir / f"done_{tag}.weights.h5"
    done_log = ctx.workdir / f"done_{tag}.json"
    if done_weights.exists() and done_log.exists():
        # a resumed run: this phase finished before the interruption
        model.load_weights(str(done_weights))
        log.info("phase %s already done in an earlier run; its weights are restored", tag)
        return json.loads(done_log.read_text())
    with ctx.strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss=loss,
            metrics=[keras.metrics.AUC(name="auc")],
        )
    x_val, y_val = ctx.validation()
    if not model.built:  # a wrapper (FGSM) is built by one call; the backup needs its weights
        model(x_val[:1])
    # epoch-level backup: an interrupted run restarts from its last finished epoch
    backup = keras.callbacks.BackupAndRestore(str(ctx.workdir / f"backup_{tag}"))
    history = model.fit(
        ctx.sequence(augment, seed_offset),
        validation_data=(x_val, y_val),
        epochs=epochs,
        callbacks=[backup, *_callbacks(ctx, patience, tag, reduce_lr)],
        verbose=ctx.verbose,
    )
    losses = history.history.get("val_loss", [float("nan")])
    entry = {
        "phase": tag,
        "epochs_run": len(losses),
        "learning_rate": lr,
        "best_val_loss": float(np.nanmin(losses)),
        "best_val_auc": float(np.nanmax(history.history.get("val_auc", [float("nan")]))),
    }
    model.save_weights(str(done_weights))
    done_log.write_text(json.dumps(entry))
    return entry


def fgsm_step(x, gradient, epsilon: float):
    """One FGSM step on 0-255 images: ``clip(x + epsilon * 255 * sign(gradient), 0, 255)``."""
    return tf.clip_by_value(x + epsilon * 255.0 * tf.sign(gradient), 0.0, 255.0)


class FGSMTrainer(keras.Model):
    """Wraps a model so `fit` trains on each batch plus FGSM copies of a fraction of it.

    The adversarial copy of image x (0-255) is ``clip(x + eps * 255 * sign(grad_x loss))``,
    computed with the current weights in inference mode (as ART's FGSM does).
    """

    def __init__(self, inner: keras.Model, epsilon: float, fraction: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inner = inner
        self.epsilon = float(epsilon)
        self.fraction = float(fraction)

    def call(self, inputs, training=False):
        return self.inner(inputs, training=training)

    def train_step(self, data):
        x, y = data
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            clean_loss = self.compute_loss(x=x, y=y, y_pred=self.inner(x, training=False))
        x_adv = fgsm_step(x, tape.gradient(clean_loss, x), self.epsilon)
        batch = tf.shape(x)[0]
        n_adv = tf.cast(tf.math.ceil(self.fraction * tf.cast(batch, tf.float32)), tf.int32)
        x_all = tf.concat([x, x_adv[:n_adv]], axis=0)
        y_all = tf.concat([y, y[:n_adv]], axis=0)
        with tf.GradientTape() as tape:
            y_pred = self(x_all, training=True)
            loss = self.compute_loss(x=x_all, y=y_all, y_pred=y_pred)
        variables = self.trainable_variables
        grads = tape.gradient(loss, variables)
        self.optimizer.apply(grads, variables)
        return self.compute_metrics(x_all, y_all, y_pred)


def fgsm_examples(model: keras.Model, x: np.ndarray, y: np.ndarray, loss, epsilon: float):
    """FGSM adversarial versions of a preprocessed batch (0-255), for evaluation."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(tf.convert_to_tensor(y), model(x, training=False))
    return fgsm_step(x, tape.gradient(value, x), epsilon).numpy()


# --------------------------------------------------------------------------- procedures
def train_simple_cnn(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """S3: Adam 1e-4, EarlyStopping(10, restore best), ReduceLROnPlateau(0.1, 5), checkpoint."""
    cfg = ctx.config
    return [
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or 50,
            lr=cfg.learning_rate or 1e-4,
            loss=loss_for(ctx.spec),
            tag="main",
            patience=cfg.patience or 10,
        )
    ]


def train_s2(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """S2: frozen + label smoothing 0.1 -> FGSM phase -> full fine-tune at 1e-5."""
    cfg = ctx.config
    log_: list[dict[str, Any]] = []
    set_backbone_trainable(model, False)
    log_.append(
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or cfg.frozen_epochs,
            lr=cfg.learning_rate or 1e-3,
            loss=loss_for(ctx.spec, 0.1),
            tag="frozen",
            patience=cfg.patience or 3,
        )
    )
    if cfg.fgsm_epochs > 0:
        with ctx.strategy.scope():
            trainer = FGSMTrainer(model, cfg.fgsm_epsilon, cfg.fgsm_fraction)
        entry = _fit(
            trainer,
            ctx,
            epochs=cfg.fgsm_epochs,
            lr=cfg.learning_rate or 1e-3,
            loss=loss_for(ctx.spec),
            tag="fgsm",
            patience=cfg.fgsm_epochs + 1,
            seed_offset=1,
            reduce_lr=False,
        )
        entry.update(epsilon=cfg.fgsm_epsilon, fraction=cfg.fgsm_fraction)
        log_.append(entry)
    if cfg.finetune_epochs > 0:
        set_backbone_trainable(model, True)
        log_.append(
            _fit(
                model,
                ctx,
                epochs=cfg.finetune_epochs,
                lr=cfg.finetune_learning_rate,
                loss=loss_for(ctx.spec),
                tag="finetune",
                patience=cfg.patience or 3,
                seed_offset=2,
            )
        )
    return log_


def train_s1(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """S1: frozen backbone, attention head, Adam, categorical cross-entropy."""
    cfg = ctx.config
    set_backbone_trainable(model, False)
    return [
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or 10,
            lr=cfg.learning_rate or 1e-3,
            loss=loss_for(ctx.spec),
            tag="frozen",
            patience=cfg.patience or 4,
        )
    ]


def train_s4(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """S4: all weights trained, flip/rotation/colour jitter, early stopping, best checkpoint."""
    cfg = ctx.config
    set_backbone_trainable(model, True)
    freeze_early_layers(model, cfg.freeze_fraction)
    return [
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or 10,
            lr=cfg.learning_rate or 1e-4,
            loss=loss_for(ctx.spec),
            tag="finetune",
            patience=cfg.patience or 3,
            augment=GeometricColourAugment(),
        )
    ]


def train_fusion(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """Backbone + residual branch: frozen backbone, then everything trained.

    Phase 1 (``frozen_epochs``, Adam 1e-3): the backbone stays at its pretrained weights while
    the residual branch, trained from scratch, and the head learn; without it the pretrained
    branch fits the training set first and the new branch gets little gradient. Phase 2
    (``epochs``, default 5, ``learning_rate`` default 3e-4): all weights, early stopping on
    validation loss with the best weights restored. Both phases use the robust augmentation
    only (rotation would resample the pixels whose relations the residual branch reads).
    """
    cfg = ctx.config
    log_: list[dict[str, Any]] = []
    if cfg.frozen_epochs > 0:
        set_backbone_trainable(model, False)
        log_.append(
            _fit(
                model,
                ctx,
                epochs=cfg.frozen_epochs,
                lr=1e-3,
                loss=loss_for(ctx.spec),
                tag="frozen",
                patience=cfg.frozen_epochs + 1,
                reduce_lr=False,
            )
        )
    set_backbone_trainable(model, True)
    log_.append(
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or 5,
            lr=cfg.learning_rate or 3e-4,
            loss=loss_for(ctx.spec),
            tag="finetune",
            patience=cfg.patience or 3,
            seed_offset=1,
        )
    )
    return log_


def train_ensemble(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """An ensemble: copy the trained members' weights in; nothing is fitted."""
    from detector.core.models import models_dir
    from detector.core.recipes.ensemble import copy_member_weights, member_folders

    requested = ctx.config.recipe_params.get("members", ctx.spec.params["members"])
    cards = copy_member_weights(model, ctx.spec, member_folders(requested, models_dir()))
    shas = [m["sha256"] for m in ctx.spec.params["members"]]
    return [
        {
            "phase": "members",
            "members": [card.name for card in cards],
            "sha256": shas,
            "epochs_run": 0,
            # how each member was trained, and how it scored alone
            "member_commands": [card.training.get("command", "") for card in cards],
            "member_test_roc_auc": [card.metrics.get("test", {}).get("roc_auc") for card in cards],
        }
    ]


def train_default(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """Any other recipe: Adam, early stopping on validation loss, best weights restored."""
    cfg = ctx.config
    return [
        _fit(
            model,
            ctx,
            epochs=cfg.epochs or 20,
            lr=cfg.learning_rate or 1e-4,
            loss=loss_for(ctx.spec),
            tag="main",
            patience=cfg.patience or 5,
        )
    ]


def train_linear_probe(model, ctx: TrainingContext) -> list[dict[str, Any]]:
    """Reference: logistic regression on frozen features, fitted with scikit-learn.

    Features are the global average pool of the backbone on ``epochs`` random native crops of
    each training image (augmented as the other recipes are); the regularisation C is chosen
    on the validation ROC-AUC from a small grid; the standardisation and the regression are
    folded into the ``logits`` Dense layer, so the model serves like any other.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    features = keras.Model(model.input, model.get_layer("head_gap").output)
    seq = ctx.sequence()  # draws are content-balanced already (see TrainingContext.weights)
    x_parts, y_parts = [], []
    for _ in range(max(1, ctx.config.epochs or 2)):
        for i in range(len(seq)):
            batch, y = seq[i]
            x_parts.append(features.predict_on_batch(batch))
            y_parts.append(y[:, 0])
        seq.on_epoch_end()
    x = np.concatenate(x_parts)
    y = np.concatenate(y_parts).astype(int)
    x_val, y_val = ctx.validation()
    f_val = features.predict(x_val, batch_size=64, verbose=0)
    mean, std = x.mean(0), x.std(0) + 1e-6
    best = None
    for c in (0.003, 0.01, 0.03, 0.1, 0.3):
        clf = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / std, y)
        auc = roc_auc_score(y_val[:, 0], clf.decision_function((f_val - mean) / std))
        if best is None or auc > best[0]:
            best = (auc, c, clf)
    auc, c, clf = best
    coef = clf.coef_[0] / std
    bias = clf.intercept_[0] - float(np.sum(clf.coef_[0] * mean / std))
    kernel = coef[:, None].astype(np.float32)
    model.get_layer("logits").set_weights([kernel, np.array([bias], np.float32)])
    return [{"phase": "linear_probe", "crops": len(y), "C": c, "best_val_auc": float(auc)}]


PROCEDURES: dict[str, Callable[[keras.Model, TrainingContext], list[dict[str, Any]]]] = {
    "linear_probe": train_linear_probe,
    "simple_cnn": train_simple_cnn,
    "efficientnet_b2": train_s2,
    "efficientnet_b7_attention": train_s1,
    "efficientnet_b7_finetune": train_s4,
    "backbone_npr_fusion": train_fusion,
    "ensemble": train_ensemble,
}


def procedure_for(recipe: str):
    """The training procedure of a recipe (the generic one for recipes without their own)."""
    return PROCEDURES.get(recipe, train_default)


def steps_for(n: int, batch_size: int) -> int:
    """Batches per epoch."""
    return math.ceil(n / batch_size)
