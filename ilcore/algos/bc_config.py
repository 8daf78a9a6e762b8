"""The options of behavioural cloning (:func:`ilcore.algos.bc.train_bc`), apart from the trainer.

Kept free of torch: the app's window process and ``ilcore dagger``'s option parsing build a
:class:`BCConfig` long before (or without ever) training, and importing torch takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ilcore.errors import ConfigError


@dataclass
class BCConfig:
    """Options of :func:`train_bc`.

    epochs: passes over the training split (each member sees every training sample once per
        epoch, or as many bootstrap draws).
    batch_size: samples per member per gradient step.
    lr: Adam learning rate.
    weight_decay: decoupled weight decay (AdamW); 0 uses plain Adam.
    entropy_weight: weight of the entropy bonus (0: pure NLL).
    nll_beta: beta of the beta-NLL for Gaussian heads (see :class:`ilcore.algos.losses.NLL`);
        0 is the textbook -log pi(a|s). The default 1 fits the mean like squared error: on
        Pendulum-v1 from 10 expert episodes it lifted BC from about -930 to about -160 (expert
        -147; 3 seeds, see docs/benchmarks.md).
    valid_fraction: share of episodes held out for validation. Callers pass it on to
        ``load_transitions``; train_bc itself uses the data's train/valid masks and splits by
        episode with this fraction only when the data has no masks (0: no validation, so no
        early stopping).
    patience: stop after this many epochs without a better validation loss and restore the best
        weights; None trains all epochs (the best weights are still restored).
    state_noise: std of Gaussian noise added to normalised vector observations while training.
    image_shift: random-shift augmentation of image observations while training, as in DrQ: each
        frame is padded by this many pixels (replicating its border) and cropped back to its size
        at a random offset, independently per member and per sample; 0 is off. Drawn from the
        trainer's noise generator, so a seeded run repeats.
    ensemble: K members (ignored when warm-starting from a policy).
    hidden: MLP widths (ignored when warm-starting).
    head: "categorical" / "gaussian" / "mse", or None for the action space's default.
    seed: seeds the initial weights, the minibatch order and the noise.
    bootstrap: each member draws its epoch's samples with replacement (bagging) instead of a
        shuffled pass; members then differ by data as well as by initialisation.
    steps_per_epoch: cap on minibatches per epoch (None: a full pass), as robomimic's
        ``epoch_every_n_steps``: on a large recording validation and early stopping then happen
        every this many steps instead of once per (long) pass; each epoch is still a fresh shuffle.
    device: "auto" (a CUDA GPU when torch sees one), "cpu", "cuda" or "cuda:N"; see
        :func:`ilcore.devices.resolve_device`. The returned policy is back on the device it
        started on (the CPU for a fresh one).
    data_mode: "auto", "memory" (decode every frame into RAM once) or "stream" (read each
        minibatch's frames from disk in worker processes); see :mod:`ilcore.data.stream` for
        the auto rule. Both train on the same minibatches.
    workers: frame-reading processes when streaming (None: one per spare core, at least one).
    """

    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    entropy_weight: float = 0.0
    nll_beta: float = 1.0
    valid_fraction: float = 0.1
    patience: int | None = 10
    state_noise: float = 0.0
    image_shift: int = 0
    ensemble: int = 1
    hidden: Sequence[int] = (256, 256)
    head: str | None = None
    seed: int = 0
    bootstrap: bool = False
    steps_per_epoch: int | None = None
    device: str = "auto"
    data_mode: str = "auto"
    workers: int | None = None

    def check(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}.")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}.")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble must be >= 1, got {self.ensemble}.")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in [0, 1), got {self.valid_fraction}.")
        if self.state_noise < 0:
            raise ConfigError(f"state_noise must be >= 0, got {self.state_noise}.")
        if self.image_shift < 0:
            raise ConfigError(f"image_shift must be >= 0 pixels, got {self.image_shift}.")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 or None, got {self.patience}.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}.")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be >= 0 or None, got {self.workers}.")
        from ilcore.data.stream import DATA_MODES  # lazy: stream imports torch, and the CLI builds BCConfig

        if self.data_mode not in DATA_MODES:
            raise ConfigError(f"data_mode must be one of {', '.join(DATA_MODES)}, got {self.data_mode!r}.")


def parse_hidden(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> (64, 64): the one reading of ``--hidden`` (MLP widths) for every command
    and for the app's saved settings, refusing anything else in one sentence.

    It runs after argparse (not as a ``type=``) because the DAgger options also read it from
    settings files, where a bad value must be a ``ConfigError``, not a usage message. It lives
    here, beside the ``hidden`` it fills, rather than in ``ilcore.cli.args``, because
    ``ilcore.algos.dagger.options`` reads it too and ``ilcore.algos`` must not import ``ilcore.cli``
    (which imports ``ilcore.algos``).
    """
    try:
        widths = tuple(int(w) for w in str(text).split(",") if w.strip())
    except ValueError:
        raise ConfigError(f"--hidden takes comma-separated integers like 256,256, got {text!r}.") from None
    if not widths or any(w < 1 for w in widths):
        raise ConfigError(f"--hidden widths must be positive integers, got {text!r}.")
    return widths
