"""Pipelines: source -> preprocess -> model -> postprocess -> sinks, one thread each.

``build_pipeline`` makes a :class:`Pipeline` from a ``PipelineSettings`` entry of the agent
config; the parts (sources, preprocessing, postprocessing, sinks) are in their own modules.
See docs/pipelines.md.
"""

from edge_agent.pipeline.frames import Frame, FrameQueue
from edge_agent.pipeline.runner import Pipeline, build_pipeline, build_source

__all__ = ["Frame", "FrameQueue", "Pipeline", "build_pipeline", "build_source"]
