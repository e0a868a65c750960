"""Which ``submit_extra`` items sbatch would read as something other than an option.

The backend runs ``sbatch <its options> <submit_extra> --array=... <script> <offset>``. sbatch
(getopt) stops reading options at the first item that is neither an option nor an option's
value: that item becomes the batch script and everything after it (our script, ``--array``,
the offset) its arguments. So an item is allowed only where getopt would read it as an option
or as the value of the option before it, and an option that needs a value may not come last
(it would swallow ``--array``). That needs to know which options take a value: the tables
below, checked against ``sbatch --help`` recorded from both Slurm variants
(``tests/unit/data/slurm/<variant>/sbatch_help.txt``).

Options the backend sets itself are refused too, with the reason. Messages name options and
positions, never values: a value copied from a CS may carry a token.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LONG_WITH_VALUE", "SHORT_FLAGS", "SHORT_WITH_VALUE", "submit_extra_problem"]

# sbatch options the backend sets itself, and why a second value breaks it. Long names match
# by prefix too: sbatch (getopt_long) accepts any unambiguous abbreviation, ``--arr=0-3``.
_RESERVED_LONG = {
    "array": "the backend submits each chunk as its own --array",
    "job-name": "counts() finds this backend's jobs by name; set job_name instead",
    "output": "the backend places each job's log itself",
    "error": "the backend places each job's stderr itself",
    "export": "the backend builds the job environment; use SubmissionSpec.environment",
    "parsable": "the backend already asks for it and parses the reply",
    "chdir": "each job runs in its own directory under work_root",
    "wrap": "the backend submits its own batch script",
}
_RESERVED_SHORT = {"a": "array", "J": "job-name", "o": "output", "e": "error", "D": "chdir"}

SHORT_WITH_VALUE = frozenset("aAbBcCdDeFGiJLmMnNopqStwx")
"""sbatch's short options that need a value (attached, ``-pmain``, or the next item)."""
SHORT_FLAGS = frozenset("hHIOQsuvVW")
"""sbatch's short options that take none, so a cluster like ``-vJx`` goes on. ``-k`` takes an
optional value that must be attached, so it is a flag here too."""

LONG_WITH_VALUE = frozenset(
    {
        "account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir",
        "cluster-constraint", "clusters", "comment", "constraint", "container",
        "container-id", "core-spec", "cores-per-socket", "cpu-freq", "cpus-per-gpu",
        "cpus-per-task", "deadline", "delay-boot", "dependency", "distribution", "error",
        "export-file", "extra", "extra-node-info", "gid", "gpu-bind", "gpu-freq", "gpus",
        "gpus-per-node", "gpus-per-socket", "gpus-per-task", "gres", "gres-flags", "hint",
        "input", "job-name", "licenses", "mail-type", "mail-user", "mcs-label", "mem",
        "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nodefile",
        "nodelist", "nodes", "ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node",
        "ntasks-per-socket", "oom-kill-step", "open-mode", "output", "partition", "power",
        "prefer", "priority", "profile", "qos", "reservation", "resv-ports", "segment",
        "signal", "sockets-per-node", "switches", "thread-spec", "threads-per-core", "time",
        "time-min", "tmp", "tres-bind", "tres-per-task", "uid", "wckey", "wrap", "exclude",
        "kill-on-invalid-dep", "mem-per-task", "x11",
    }
)  # fmt: skip
"""sbatch's long options whose value may be the next item (``--partition main``). Any other
long option must carry its value after ``=``: for an option whose value is optional (or a
flag), getopt never takes the next item, which would then be read as the batch script."""


def submit_extra_problem(items: Sequence[str]) -> str | None:
    """Why ``items`` cannot follow the backend's own sbatch options, or ``None``."""
    position = 0
    while position < len(items):
        item = items[position]
        verdict = _one_option(item)
        if isinstance(verdict, str):
            return verdict
        if verdict:
            if position + 1 == len(items):
                return (
                    f"item {position} ({item}) needs a value and is the last item: "
                    "sbatch would take the backend's own --array as its value"
                )
            position += 1  # getopt takes the next item as the value, whatever it looks like
        position += 1
    return None


def _one_option(item: str) -> str | bool:
    """Why the item is refused, or whether the next item is its value."""
    if item == "--":
        return "'--' ends sbatch's options: the backend's own would be taken as the script"
    if not item.startswith("-") or item == "-":
        return (
            "a bare item (not an option, and not the value of the option before it) ends "
            "sbatch's options: sbatch would run it as the batch script; write an option's value "
            "as --option=value"
        )
    if item.startswith("--"):
        name, equals, _ = item[2:].partition("=")
        for reserved, why in _RESERVED_LONG.items():
            if name and reserved.startswith(name):
                return f"'--{name}' (sbatch --{reserved}) is not allowed: {why}"
        return not equals and name in LONG_WITH_VALUE
    for offset, letter in enumerate(item[1:], start=1):
        if letter in _RESERVED_SHORT:
            reserved = _RESERVED_SHORT[letter]
            return f"'-{letter}' (sbatch --{reserved}) is not allowed: {_RESERVED_LONG[reserved]}"
        if letter not in SHORT_FLAGS:
            # the rest of the item is this option's value; without one, the next item is
            return letter in SHORT_WITH_VALUE and offset == len(item) - 1
    return False
