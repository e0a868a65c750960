"""DIRAC's own code driven against the harness cluster: the consumer scenarios.

Everything in this package runs inside the DIRAC environment (``.venv-dirac``, made by
``just dirac-env``: the pinned ``dirac`` release, this checkout's interCEde and the
``InterCEdeDIRAC`` extension), one scenario per process, started by
:mod:`harness.scenarios` as ``python -m harness.dirac.<scenario> --cs FILE --result FILE``.

The CS is loaded in-process, as DIRAC's own agent tests do. Only DIRAC *services* are replaced
(:mod:`harness.dirac._services`: PilotAgentsDB, Matcher, site and resource status, proxy
manager, job state and reporting); every call on a Computing Element is DIRAC's own code
calling the real ``InterCEdeComputingElement`` built by DIRAC's ``ComputingElementFactory``.
"""

from harness.dirac._agent import load_cs

__all__ = ["load_cs"]
