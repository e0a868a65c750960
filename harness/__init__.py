"""The interCEde end-to-end harness: a real Slurm cluster in containers, started by one command.

Not part of the shipped wheel. Entry points: ``python -m harness`` (CLI), :mod:`harness.cluster`
(Python API), :mod:`harness.pytest_plugin` (fixtures) and :mod:`harness.faults` (fault hooks).
"""

__all__: list[str] = []
