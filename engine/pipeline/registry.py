"""The registry of stages: looked up by name, never hard-coded in the ledger or host.

It imports the stage modules; stages import only `engine.pipeline.types`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.config import LANES, Settings
from engine.pipeline.types import PerItemAdapter, Stage, TaskStage


def as_stage(obj: Any) -> Stage:
    """A `Stage` from a full stage or from any object with `run`/`store` (per item)."""
    if hasattr(obj, "run_batch") and hasattr(obj, "store_many") and hasattr(obj, "prepare"):
        return obj  # type: ignore[no-any-return]
    return PerItemAdapter(obj)


class StageRegistry:
    def __init__(self, stages: Iterable[Any] = (), tasks: Iterable[TaskStage] = ()) -> None:
        self._stages: dict[str, Stage] = {}
        self._tasks: dict[str, TaskStage] = {}
        for stage in stages:
            self.register(stage)
        for task in tasks:
            self.register_task(task)

    def register(self, stage: Any) -> None:
        stage = as_stage(stage)
        if stage.name in self._stages or stage.name in self._tasks:
            raise ValueError(f"stage {stage.name!r} is registered twice")
        for req in stage.requires:
            if req not in self._stages:
                raise ValueError(
                    f"stage {stage.name!r} requires {req!r}, which must be registered first"
                )
            missing = stage.kinds - self._stages[req].kinds
            if missing:
                raise ValueError(
                    f"stage {stage.name!r} requires {req!r}, which does not run for {missing}"
                )
        if stage.lane not in LANES:
            raise ValueError(f"stage {stage.name!r}: lane {stage.lane!r} is not one of {LANES}")
        size = getattr(type(stage), "batch_size", 1)
        if isinstance(size, int) and size < 1:  # a property (device-dependent) is checked later
            raise ValueError(f"stage {stage.name!r}: batch_size must be at least 1")
        self._stages[stage.name] = stage

    def register_task(self, task: TaskStage) -> None:
        if task.name in self._stages or task.name in self._tasks:
            raise ValueError(f"stage {task.name!r} is registered twice")
        if task.lane not in LANES:
            raise ValueError(f"task {task.name!r}: lane {task.lane!r} is not one of {LANES}")
        self._tasks[task.name] = task

    def get(self, name: str) -> Stage:
        return self._stages[name]

    def task(self, name: str) -> TaskStage:
        return self._tasks[name]

    def is_task(self, name: str) -> bool:
        return name in self._tasks

    def names(self) -> list[str]:
        """Item stages in registration order, which is dependency order."""
        return list(self._stages)

    def task_names(self) -> list[str]:
        return list(self._tasks)

    def stages(self) -> list[Stage]:
        return list(self._stages.values())

    def for_kind(self, kind: str) -> list[Stage]:
        return [s for s in self._stages.values() if kind in s.kinds]

    def dependents(self, name: str) -> list[Stage]:
        """Stages that directly require `name`."""
        return [s for s in self._stages.values() if name in s.requires]

    def all_dependents(self, name: str) -> list[str]:
        """Every stage that needs `name`, directly or through another, in order."""
        found: list[str] = []
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for stage in self.dependents(current):
                if stage.name not in found:
                    found.append(stage.name)
                    frontier.append(stage.name)
        order = self.names()
        return sorted(found, key=order.index)

    def versions(self) -> dict[str, str]:
        out = {s.name: s.version for s in self._stages.values()}
        out.update({t.name: t.version for t in self._tasks.values()})
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._stages or name in self._tasks


def default_registry(
    settings: Settings | None = None, tag_words: Sequence[str] = ()
) -> StageRegistry:
    """The stages the settings ask for, in dependency order. Model stages are built
    without importing torch (the CLI stays fast); their models load in the host."""
    from engine.pipeline.metadata import MetadataStage
    from engine.pipeline.thumbnail import ThumbnailStage

    stages: list[Any] = [MetadataStage(), ThumbnailStage()]
    if settings is not None and settings.models.embed:
        from engine.pipeline.embed import EmbedStage
        from engine.pipeline.tags import TagsStage

        stages += [EmbedStage(settings), TagsStage(settings, tag_words)]
    if settings is not None and settings.models.detect:
        from engine.pipeline.detect import DetectStage

        stages.append(DetectStage(settings))
    if settings is not None and settings.ocr.enabled:
        from engine.pipeline.ocr import OcrStage

        stages.append(OcrStage(settings))
        if settings.models.text:
            from engine.pipeline.text_embed import TextEmbedStage

            stages.append(TextEmbedStage(settings))
    tasks: list[TaskStage] = []
    if settings is not None:
        from engine.learning.scoring import LabelsStage
        from engine.learning.training import LearnTask, RescoreTask

        learn = LearnTask(settings)
        tasks = [learn, RescoreTask(settings, learn)]
        if settings.models.embed:
            stages.append(LabelsStage(settings, learn))
    return StageRegistry(stages, tasks)
