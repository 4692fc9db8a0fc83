"""Registry of SpineAI tasks (capabilities): what exists, its CLI command, its input. No torch.

A task is listed here once it works end to end; the Slicer home module and ``spineai info``
read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskInfo:
    name: str
    title: str
    cli: str
    input: str  # "ct" (3D volume) or "radiograph" (2D)
    entry_point: str  # the public Python function
    slicer_module: str


TASKS: dict[str, TaskInfo] = {}


def register_task(info: TaskInfo) -> TaskInfo:
    TASKS[info.name] = info
    return info


# Task packages register themselves on import; none of them imports torch at module level.
TASK_MODULES = ("SpineAILib.cobb", "SpineAILib.cervical", "SpineAILib.vertebrae", "SpineAILib.vertebra_body",
                "SpineAILib.fracture")


def available_tasks() -> list[TaskInfo]:
    import importlib

    for mod in TASK_MODULES:
        importlib.import_module(mod)
    return [TASKS[k] for k in sorted(TASKS)]
