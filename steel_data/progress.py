"""A live progress bar for `steel run`: docs/s and the share each op keeps."""

from __future__ import annotations

import time

from steel_data.recipe import Recipe


class ProgressBar:
    def __init__(self, recipe: Recipe, enabled: bool = True):
        self.enabled = enabled
        self.labels = recipe.op_labels()
        self.kept: dict[str, list[int]] = {label: [0, 0] for label in self.labels}
        self._progress = None
        self._task = None
        self._start = time.perf_counter()

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]steel run"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(), TextColumn("{task.fields[ops]}"), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("run", total=None, rate="", ops="")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, event: str, data: dict) -> None:
        if self._progress is None:
            return
        if event == "start":
            self._start = time.perf_counter()
            self._base = data["done_records"]
            self._progress.update(self._task, total=data["records"], completed=data["done_records"])
        elif event == "shard":
            for op in data["ops"]:
                k = self.kept.setdefault(op["label"], [0, 0])
                k[0] += op["docs_in"]
                k[1] += op["docs_out"]
            self._progress.advance(self._task, data["records"])
            done = self._progress.tasks[0].completed - getattr(self, "_base", 0)
            rate = done / max(time.perf_counter() - self._start, 1e-9)
            shares = " ".join(
                f"{label.split('_')[0][:6]}:{out / inp:.0%}" for label, (inp, out) in self.kept.items()
                if inp and out != inp
            )
            self._progress.update(self._task, rate=f"{rate:,.0f} docs/s", ops=shares)
