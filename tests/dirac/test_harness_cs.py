"""The harness's DIRAC CS, read by DIRAC itself: with ``with_host`` the site has a second CE on
the login node with ``BatchSystem = Host``, which DIRAC's queue resolution (what
``dirac-admin-debug-ce`` runs) builds into an InterCEde CE on the ``host`` scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest
from DIRAC import gConfig
from DIRAC.ConfigurationSystem.Client.Helpers.Resources import getQueues
from DIRAC.WorkloadManagementSystem.Utilities.QueueUtilities import getQueuesResolved
from diraccfg import CFG

from harness.dirac_cs import VO, StackAccess, ce_name, host_ce_name, render_cs

# What harness.config.render_client_toml writes (its own unit test pins the same text).
CLIENT_TOML = """
[credentials]
ssh_key_file = "{key}"

[defaults]
kind = "batch"
transport = "ssh"
scheduler = "slurm"
host = "127.0.0.1"
port = 40022
user = "submit"
known_hosts = "{known_hosts}"
work_root = "/home/submit/intercede"

[queues.main]
queue = "main"

[queues.second]
queue = "second"

[queues.host]
scheduler = "host"
slots = 2
"""


@pytest.fixture
def access(tmp_path: Path) -> StackAccess:
    key, known_hosts = tmp_path / "key", tmp_path / "known_hosts"
    key.write_text("not read before the first connection\n")
    known_hosts.write_text("[127.0.0.1]:40022 ssh-ed25519 AAAA\n")
    path = tmp_path / "client.toml"
    path.write_text(CLIENT_TOML.format(key=key, known_hosts=known_hosts))
    return StackAccess.from_client_config(path)


def test_the_host_queue_is_not_a_partition(access: StackAccess) -> None:
    assert access.queues == ("main", "second")
    assert access.host_queues == {"host": 2}


def test_dirac_resolves_the_host_ce_into_a_host_scheduler(access: StackAccess) -> None:
    cfg = CFG()
    cfg.loadFromBuffer(render_cs(access, stack="hcs", with_host=True))
    gConfig.loadCFG(cfg)
    found = getQueues(community=VO, ceList=[ce_name("hcs"), host_ce_name("hcs")])
    assert found["OK"], found
    resolved = getQueuesResolved(siteDict=found["Value"], vo=VO, instantiateCEs=True)
    assert resolved["OK"], resolved
    configs = {(q["CEName"], q["QueueName"]): q["CE"].config for q in resolved["Value"].values()}
    assert set(configs) == {
        (ce_name("hcs"), "main"),
        (ce_name("hcs"), "second"),
        (host_ce_name("hcs"), "host"),
    }
    host = configs[(host_ce_name("hcs"), "host")]
    assert (host.scheduler, host.slots, host.queue, host.port) == ("host", 2, None, 40022)
    slurm = configs[(ce_name("hcs"), "main")]
    assert (slurm.scheduler, slurm.queue) == ("slurm", "main")


def test_without_host_only_the_slurm_ce(access: StackAccess) -> None:
    cfg = CFG()
    cfg.loadFromBuffer(render_cs(access, stack="plain"))
    sites = cfg.getAsDict()["Resources"]["Sites"]["DIRAC"]
    (site,) = sites.values()
    assert site["CE"] == ce_name("plain")
    assert list(site["CEs"]) == [ce_name("plain")]
