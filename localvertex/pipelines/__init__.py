"""Vertex AI Pipelines in the local twin: PipelineJobs that execute their ``pipelineSpec``
with kfp.local in a supervised worker process. See service.py for the entry points other
parts of the server (the scheduler, the template registry) call.
"""
