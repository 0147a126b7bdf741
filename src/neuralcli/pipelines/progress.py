"""How pipelines report progress without knowing about terminals.

The CLI passes a reporter that draws rich progress bars; Python callers get silence
by default or pass their own.
"""

from __future__ import annotations

from typing import Any, Protocol


class ProgressReporter(Protocol):
    def start(self, task: str, total: int) -> None:
        """A long piece of work named `task` begins, with `total` units."""

    def update(self, task: str, completed: int, **fields: Any) -> None:
        """`completed` units of `task` are done; `fields` are shown beside the bar."""

    def finish(self, task: str) -> None:
        """`task` is over (its bar can be removed)."""

    def message(self, text: str) -> None:
        """A one-line note for the user (not part of --json output)."""


class SilentReporter:
    def start(self, task: str, total: int) -> None:
        pass

    def update(self, task: str, completed: int, **fields: Any) -> None:
        pass

    def finish(self, task: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class TrainingProgress:
    """Adapts a ProgressReporter to the training loop's callback protocol."""

    def __init__(self, reporter: ProgressReporter, task: str) -> None:
        self.reporter = reporter
        self.task = task
        self.last_val: float | None = None

    def on_start(self, total_steps: int, start_step: int) -> None:
        self.reporter.start(self.task, total_steps)
        if start_step:
            self.reporter.update(self.task, start_step)

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        fields = {"loss": metrics.get("loss"), "samples/s": metrics.get("samples_per_s")}
        if self.last_val is not None:
            fields["val"] = self.last_val
        self.reporter.update(self.task, step, **fields)

    def on_validation(self, step: int, metrics: dict[str, Any]) -> None:
        value = metrics.get("val_loss")
        self.last_val = float(value) if value is not None else None

    def on_end(self, result: Any) -> None:
        self.reporter.finish(self.task)
