"""Running a suite, one concern per module.

- ``spec``: what a run is asked to do (``TargetSpec``, ``Reliability``), checked before traffic.
- ``startup``: start and connect to the target (the embedded local router, DigitalOcean, any
  OpenAI-compatible router).
- ``candidate``: ``--candidate`` (a temporary DigitalOcean router) and ``--against deployed``.
- ``resume``: read back and check an interrupted run (``--resume``).
- ``job``: ``run_suite``, the run end to end.
- ``gating``: gates and the comparison with a baseline run.
- ``finalize``: judge, analyse, write summary.json and the reports; re-render a stored run.
- ``merge``: join shard runs into one run directory.

The command line calls these; ``evalkit.run_suite`` is the public entry point for Python.
"""

from evalkit.run.candidate import DeployedComparison, check_candidate_options, run_against_deployed
from evalkit.run.finalize import finalize, judge_stored, rerender
from evalkit.run.gating import compare_with_baseline, gate_expressions, gating_options
from evalkit.run.job import run_suite
from evalkit.run.merge import merge_shards
from evalkit.run.spec import DO_DEFAULT_RPM, TARGET_KINDS, Reliability, TargetSpec

__all__ = ["DO_DEFAULT_RPM", "TARGET_KINDS", "DeployedComparison", "Reliability", "TargetSpec",
           "check_candidate_options", "compare_with_baseline", "finalize", "gate_expressions", "gating_options",
           "judge_stored", "merge_shards", "rerender", "run_against_deployed", "run_suite"]
