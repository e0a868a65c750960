"""InterCEdeDIRAC: a DIRAC extension that adds one Computing Element, ``InterCEde``."""


def extension_metadata():
    """What DIRAC's extension discovery reads (``DIRAC.Core.Utilities.Extensions``).

    A negative priority puts it after DIRAC itself: it adds a CE and overrides nothing.
    """
    return {"priority": -10}
