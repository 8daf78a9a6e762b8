"""Summary: labels used, the person's seconds, return per round, and return vs labels."""

from __future__ import annotations

from typing import Any

from app.modes.base import Mode, ModeView
from app.modes.train import score_text


class SummaryMode(Mode):
    name = "summary"
    title = "Summary"

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.summary: dict[str, Any] = {}

    def enter(self) -> None:
        super().enter()
        self.summary = self.write_summary()
        self.finished = True  # nothing to wait for; the window stays until the person quits

    def write_summary(self) -> dict[str, Any]:
        """Write the session's summary files and return what the screen shows."""
        return self.session.write_summary()

    def view(self) -> ModeView:
        s = self.session
        rows = [r for r in s.rounds.public() if r["query_rate"] is not None]
        rate = rows[-1]["query_rate"] if rows else None
        per_round = self.summary.get("returns_per_round", {})
        return ModeView(
            mode=self.name,
            title=self.title,
            subtitle=f"{s.settings.env_id} - saved in {s.path}",
            lines=[
                ("labels used", str(s.totals().labels)),
                ("human seconds", f"{s.human_seconds:.0f}"),
                ("query rate (last round)", "-" if rate is None else f"{100 * rate:.1f}%"),
                ("episodes", str(self.summary.get("episodes", 0))),
                ("policy", f"v{s.state.policy_version}"),
            ],
            items_title="Episode return in each round (0 = demos)",
            # Returns of the episodes played while recording (capped by --max-episode-steps);
            # the plot shows the evaluation of each trained policy instead.
            items=[f"round {k}: {v:.1f}" for k, v in per_round.items()]
            + [f"policy v{e['version']}: eval {e['eval_return']:.1f}{score_text(e)}" for e in s.state.evals
               if e.get("eval_return") is not None and "version" in e],
            plot=[(float(e["labels"]), float(e["eval_return"])) for e in s.state.evals if e.get("eval_return") is not None],
            plot_labels=("labelled states", "eval return"),
            accent="summary",
        )

    def help(self) -> list[tuple[str, str]]:
        return [("quit", "")]
