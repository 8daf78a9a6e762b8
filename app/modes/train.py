"""Train: a background process trains on everything recorded; the window stays live."""

from __future__ import annotations

from typing import Any

from app.input.intents import Intent
from app.modes.base import Mode, ModeView


class TrainMode(Mode):
    name = "train"
    title = "Training"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.version: int | None = None

    def enter(self) -> None:
        super().enter()
        status = self.session.trainer.status
        if status.running:
            self.version = status.version  # a job is already on its way (e.g. re-entered with F3)
            return
        state = self.session.state
        if self.session.policy is not None and self.session.totals().labels == state.labels_at_last_train:
            self.version = state.policy_version  # nothing new to learn from: keep the current policy
            self.finished = self.nothing_to_do = True
            return
        self.version = self.session.start_training()

    def handle(self, intent: Intent) -> None:
        pass

    def done_summary(self) -> str:
        s = self.session
        ev = [e for e in s.state.evals if e.get("version") == self.version and e.get("eval_return") is not None]
        text = f"policy v{self.version} trained on {s.totals().labels} labels"
        if ev:
            text += f", evaluation return {ev[-1]['eval_return']:.1f}" + score_text(ev[-1])
        return text + (f" - {s.policy_notice}" if s.policy_notice else "")

    def update(self, dt: float) -> None:
        # The manager polls the trainer every frame; here we only notice our job has landed.
        status = self.session.trainer.status
        if self.version is not None and self.session.state.policy_version >= self.version:
            self.finished = True
        elif not status.running and status.message.startswith("error"):
            self.finished = False

    def view(self) -> ModeView:
        s = self.session
        st = s.trainer.status
        installed = s.controller.policy_version or 0
        policy = f"v{installed}" if self.version is None or installed >= self.version else f"v{installed} -> v{self.version}"
        lines = [("policy", policy), ("epoch", f"{st.epoch}/{st.epochs}")]
        if st.train_loss is not None:
            lines.append(("train loss", f"{st.train_loss:.4f}"))
        if st.valid_loss is not None:
            lines.append(("validation loss", f"{st.valid_loss:.4f}"))
        evals = [f"v{e['version']}: return {e['eval_return']:.1f}{score_text(e, short=True)}  ({e['labels']} labels)"
                 for e in reversed(s.state.evals) if e.get("eval_return") is not None]
        prompt = None
        detail = None
        if st.message.startswith("error"):
            prompt, detail = "Training failed", st.message[len("error: "):] + " - F3 retries"
        elif st.running:
            prompt = f"Training policy v{self.version}..."
            detail = "in a separate process; the window stays live"
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"ensemble of {s.settings.ensemble}, {s.settings.epochs}+ epochs (at least "
            f"{s.settings.options().retrain().min_updates} updates)"
            + (", warm start" if s.settings.warm_start else "") + (", IWR weighting" if s.settings.iwr else ""),
            frame=None,
            prompt=prompt,
            prompt_detail=detail,
            lines=lines,
            items_title="Evaluations (return, % of your demos)",
            items=evals[:8],
            progress=st.progress if st.running else (1.0 if not st.message.startswith("error") else 0.0),
            progress_label="training" if st.running else st.message,
            plot=[(float(e["labels"]), float(e["eval_return"])) for e in s.state.evals if e.get("eval_return") is not None],
            plot_labels=("labels", "return"),
            accent="train",
        )

    def help(self) -> list[tuple[str, str]]:
        return [("next", "go on (training continues in the background; the policy swaps in when done)")]


def score_text(evaluation: dict, *, short: bool = False) -> str:
    """" (97% of your demos)" (``short``: " (97%)", for a list whose title says what of) for an
    evaluation with a score (ilcore.algos.dagger.readiness), else ""."""
    score = evaluation.get("score")
    if score is None:
        return ""
    return f" ({score:.0%})" if short else f" ({score:.0%} of your demos)"
