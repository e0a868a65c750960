"""A DIRAC proxy as the bytes a job's secret file holds.

DIRAC hands a CE its proxy in two shapes: PEM text (scripts, tests) and an ``X509Chain`` object
(``SiteDirector._setCredentials`` calls ``ce.setProxy(chain)``, and ``RemoteRunner`` passes
``workloadCE.proxy``, that same chain, as ``submitJob``'s ``proxy`` argument). The adapter must
not import DIRAC, so it recognises a chain by its ``dumpAllToString()``, which returns
``S_OK(pem)``. No error message repeats the proxy's content.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["proxy_pem"]


def proxy_pem(proxy: object) -> bytes | None:
    """The PEM bytes of ``proxy``, or ``None`` when there is none (``""``/``None``: no secret).

    Raises ``ValueError`` naming the ``proxy`` argument when it is neither PEM text nor a chain
    that dumps to PEM.
    """
    if proxy is None or proxy in ("", b""):
        return None
    if isinstance(proxy, bytes):
        return proxy
    if isinstance(proxy, str):
        return proxy.encode()
    dump = getattr(proxy, "dumpAllToString", None)
    if not callable(dump):
        raise ValueError(f"proxy: expected PEM text or an X509Chain, got {type(proxy).__name__}")
    result = dump()
    if not isinstance(result, Mapping) or not result.get("OK"):
        why = result.get("Message", "no message") if isinstance(result, Mapping) else "not S_OK"
        raise ValueError(f"proxy: the X509Chain could not be dumped to PEM: {why}")
    value = result.get("Value")
    if isinstance(value, str) and value:
        return value.encode()
    if isinstance(value, bytes) and value:
        return value
    raise ValueError("proxy: the X509Chain dumped no PEM text")
