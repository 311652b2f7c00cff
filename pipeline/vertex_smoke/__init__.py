"""``vertex-smoke``: the smallest real run on Vertex AI, then the checks only Vertex AI can show.

What the offline tests cannot prove, this checks on a real project and prints as a checklist
(✓/✗, each with its evidence: resource names and console links). One module per check:

1. succeeds.py: a run with the smallest parameters succeeds within a bounded wait;
2. experiment.py: the run is linked to its Vertex AI Experiment (``get_experiment_df`` lists it);
3. tuning_link.py: the run's ``launch-tuning`` task names its tuning job in ``gcp_resources``
   and that job exists;
4. cancel.py: cancelling a run, while ``wait-for-tuning`` waits, leaves its tuning job
   ``JOB_STATE_CANCELLED`` (the SIGTERM path of components/entrypoint.py and
   components/wait_for_tuning.py);
5. schedule.py: a schedule is created (paused at once, first start a year ahead, one run at
   most) with ``maxConcurrentActiveRunCount=1``, then paused and deleted.

Around them: plan.py (the smallest run's parameters, names, wait bounds, refusals), cost.py
(the estimate printed first, by the cost guard's arithmetic in components/cost.py),
observe.py (what is read of a run while waiting), checklist.py (the rows), session.py (the
``Smoke`` session: clients, sending, bounded waits, clean-up) and runner.py (the checks in order,
each phase guarded). The command's options and output are in pipeline/commands/vertex_smoke.py.

It is billed (two tuning jobs, one cancelled early, and the evaluation calls), so the command
states the cost first and asks for confirmation unless ``--yes``; it refuses to run in CI
(``CI=true``) and without Application Default Credentials. Every wait is bounded; a run or
tuning job still going at its bound is cancelled, so nothing goes on billing unseen. Every request
and every checklist row is built by a pure function (tested offline in tests/test_vertex_smoke.py);
the session only sends them and observes.
"""
