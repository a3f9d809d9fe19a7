"""One consume loop per stage (the main topic, or retry topic n of it), and the pure parts it rests on."""

from kretry.stage.loop import Stage, StageStopped, stage_label

__all__ = ["Stage", "StageStopped", "stage_label"]
