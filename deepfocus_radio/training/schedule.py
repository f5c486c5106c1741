"""Learning-rate schedule: linear warm-up, then cosine decay, reduce-on-plateau or constant."""

import math

__all__ = ["LearningRateSchedule"]


class LearningRateSchedule:
    """Sets the learning rate of an optimizer at every step.

    The rate is a pure function of the step for ``cosine`` and ``none``; ``plateau`` keeps
    a multiplicative factor reduced when the validation loss stops improving. Its whole
    state is a few numbers (:meth:`state_dict`), so training resumes exactly.

    Parameters
    ----------
    optimizer : `torch.optim.Optimizer`
        Optimizer whose parameter groups receive the rate.
    base_lr : float
        Peak learning rate.
    kind : {'cosine', 'plateau', 'none'}
        Schedule after the warm-up.
    epochs : int
        Total number of epochs (cosine decays to ``min_lr`` at the end).
    steps_per_epoch : int
        Optimizer steps per epoch.
    warmup_epochs : float, optional
        Linear warm-up from ``base_lr / warmup_steps`` to ``base_lr``.
    min_lr : float, optional
        Floor of the cosine decay and of plateau reductions.
    plateau_factor : float, optional
        Factor applied after ``plateau_patience`` epochs without improvement.
    plateau_patience : int, optional
        Epochs without improvement before a reduction.
    """

    def __init__(self, optimizer, *, base_lr, kind, epochs, steps_per_epoch, warmup_epochs=0,
                 min_lr=0.0, plateau_factor=0.5, plateau_patience=3):
        self.optimizer = optimizer
        self.base_lr = float(base_lr)
        self.kind = kind
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.total_steps = max(1, int(epochs) * self.steps_per_epoch)
        self.warmup_steps = int(round(float(warmup_epochs) * self.steps_per_epoch))
        self.min_lr = float(min_lr)
        self.plateau_factor = float(plateau_factor)
        self.plateau_patience = int(plateau_patience)
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def rate(self, epoch, step):
        """Learning rate at a step of an epoch (both 0-based)."""
        global_step = epoch * self.steps_per_epoch + step
        if global_step < self.warmup_steps:
            return self.base_lr * (global_step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, (global_step - self.warmup_steps) / span)
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "plateau":
            return max(self.min_lr, self.base_lr * self.scale)
        return self.base_lr

    def step(self, epoch, step):
        """Set the rate of every parameter group for this step; returns it."""
        rate = self.rate(epoch, step)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        return rate

    def end_epoch(self, val_loss):
        """Record an epoch's validation loss (reduces the rate on a plateau)."""
        if val_loss < self.best:
            self.best = float(val_loss)
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.kind == "plateau" and self.bad_epochs > self.plateau_patience:
            self.scale *= self.plateau_factor
            self.bad_epochs = 0

    def state_dict(self):
        """Plain numbers describing the state."""
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict`."""
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
