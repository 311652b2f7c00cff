"""Google's published facts about the platform the pipeline runs on, each with its source.

``platform_facts.gemini`` is the one table of Gemini models for tuning and inference on
Vertex AI (Gemini Enterprise Agent Platform): which models tune where, their limits,
thinking controls, media resolutions, lifecycle dates and the token arithmetic. The
components ship its functions with ``additional_funcs`` (functions only, imports inside),
and the CLI and the local Vertex AI import them, so all three refuse the same things.

When Google's pages change, change the table there (and its ``read`` dates); nothing else
holds a model fact.
"""
