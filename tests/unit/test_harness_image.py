"""Which base the stack image is built from: present, pulled, cached bootstrap, new bootstrap.

debootstrap is slow and needs root, so it must run only when nothing else works; and it must
use its own default mirror, so no mirror host ever ends up in an argument or a committed file.
The Docker client and the subprocess calls are stand-ins here: no engine, no root needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from requests.exceptions import ConnectionError as RequestsConnectionError

from harness.config import Variant, load_variants
from harness.image import BASE_REPOSITORY, ImageError, resolve_base

FAKE_DEBOOTSTRAP = "/opt/fake/debootstrap"


class FakeImages:
    def __init__(self, present: set[str], pull_error: Exception | None) -> None:
        self.present = set(present)
        self.pull_error = pull_error
        self.pulls: list[tuple[str, str]] = []

    def get(self, ref: str) -> object:
        if ref not in self.present:
            raise docker.errors.ImageNotFound(f"no such image: {ref}")
        return object()

    def pull(self, repo: str, tag: str) -> object:
        self.pulls.append((repo, tag))
        if self.pull_error is not None:
            raise self.pull_error
        self.present.add(f"{repo}:{tag}")
        return object()


class FakeAPI:
    def __init__(self, images: FakeImages) -> None:
        self.images = images
        self.imports: list[dict[str, Any]] = []

    def import_image_from_file(self, path: str, repository: str, tag: str) -> None:
        assert Path(path).is_file(), "the rootfs tarball must exist when imported"
        self.imports.append({"repository": repository, "tag": tag})
        self.images.present.add(f"{repository}:{tag}")


class FakeDocker:
    def __init__(self, present: set[str], pull_error: Exception | None = None) -> None:
        self.images = FakeImages(present, pull_error)
        self.api = FakeAPI(self.images)


class FakeRun:
    """Stands in for ``subprocess.run``: debootstrap makes a rootfs, tar makes the tarball.

    The module-level functions are patched (the harness calls them through their modules), and
    only for the duration of one test.
    """

    def __init__(self, debootstrap_code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.debootstrap_code = debootstrap_code

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if argv[0] == FAKE_DEBOOTSTRAP:
            if self.debootstrap_code != 0:
                return subprocess.CompletedProcess(argv, self.debootstrap_code, "", "E: gpgv\n")
            rootfs = Path(argv[-1])
            (rootfs / "var/cache/apt/archives").mkdir(parents=True)
            (rootfs / "var/cache/apt/archives/libc6.deb").write_bytes(b"deb")
            (rootfs / "etc").mkdir()
            return subprocess.CompletedProcess(argv, 0, "I: Base system installed\n", "")
        if argv[0] == "tar":
            rootfs = Path(argv[2])
            assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))
            Path(argv[argv.index("-cf") + 1]).write_bytes(b"tar")
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError(f"unexpected command {argv}")

    def debootstraps(self) -> list[list[str]]:
        return [c for c in self.calls if c[0] == FAKE_DEBOOTSTRAP]


@pytest.fixture
def variant() -> Variant:
    return load_variants()["bookworm"]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun()
    monkeypatch.setattr(subprocess, "run", fake)
    monkeypatch.setattr(shutil, "which", lambda name: FAKE_DEBOOTSTRAP)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.delenv("INTERCEDE_NO_PULL", raising=False)
    return fake


def quiet(msg: str) -> None:
    pass


def test_present_base_is_used_as_is(variant: Variant, run: FakeRun) -> None:
    cli = FakeDocker({variant.base_image})
    assert resolve_base(cli, variant, quiet) == variant.base_image  # type: ignore[arg-type]
    assert cli.images.pulls == []
    assert run.calls == []


def test_absent_base_is_pulled_when_a_registry_answers(variant: Variant, run: FakeRun) -> None:
    cli = FakeDocker(set())
    assert resolve_base(cli, variant, quiet) == variant.base_image  # type: ignore[arg-type]
    repo, _, tag = variant.base_image.partition(":")
    assert cli.images.pulls == [(repo, tag or "latest")]
    assert run.calls == []


def test_untagged_base_is_pulled_as_latest(variant: Variant, run: FakeRun) -> None:
    untagged = replace(variant, base_image="debian")
    cli = FakeDocker(set())
    assert resolve_base(cli, untagged, quiet) == "debian"  # type: ignore[arg-type]
    assert cli.images.pulls == [("debian", "latest")]


@pytest.mark.parametrize(
    "error",
    [docker.errors.APIError("pull access denied"), RequestsConnectionError("no route")],
    ids=["registry-refuses", "no-network"],
)
def test_unpullable_base_falls_back_to_the_cached_bootstrap(
    variant: Variant, run: FakeRun, error: Exception
) -> None:
    cached = f"{BASE_REPOSITORY}:{variant.suite}"
    cli = FakeDocker({cached}, pull_error=error)
    logged: list[str] = []
    assert resolve_base(cli, variant, logged.append) == cached  # type: ignore[arg-type]
    assert len(cli.images.pulls) == 1
    assert run.calls == []
    assert any(type(error).__name__ in line for line in logged)


def test_debootstrap_only_when_absent_unpullable_and_uncached(
    variant: Variant, run: FakeRun
) -> None:
    cli = FakeDocker(set(), pull_error=docker.errors.APIError("pull access denied"))
    tag = resolve_base(cli, variant, quiet)  # type: ignore[arg-type]
    assert tag == f"{BASE_REPOSITORY}:{variant.suite}"
    [argv] = run.debootstraps()
    # Exactly: program, variant flag, suite, target. A fifth positional would be a mirror.
    assert argv[:3] == [FAKE_DEBOOTSTRAP, "--variant=minbase", variant.suite]
    assert len(argv) == 4
    assert not any("://" in arg or arg.startswith("--mirror") for arg in argv)
    assert cli.api.imports == [{"repository": BASE_REPOSITORY, "tag": variant.suite}]
    # The next resolve finds the import and bootstraps nothing more.
    assert resolve_base(cli, variant, quiet) == tag  # type: ignore[arg-type]
    assert len(run.debootstraps()) == 1


def test_no_pull_setting_skips_the_registry(
    variant: Variant, run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERCEDE_NO_PULL", "1")
    cli = FakeDocker(set())
    resolve_base(cli, variant, quiet)  # type: ignore[arg-type]
    assert cli.images.pulls == []
    assert len(run.debootstraps()) == 1


def test_failed_debootstrap_raises_with_its_output(variant: Variant, run: FakeRun) -> None:
    run.debootstrap_code = 1
    cli = FakeDocker(set(), pull_error=docker.errors.APIError("denied"))
    with pytest.raises(ImageError, match=f"debootstrap {variant.suite} failed:\nE: gpgv"):
        resolve_base(cli, variant, quiet)  # type: ignore[arg-type]
    assert cli.api.imports == []


def test_bootstrap_refuses_without_root(
    variant: Variant, run: FakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cli = FakeDocker(set(), pull_error=docker.errors.APIError("denied"))
    with pytest.raises(ImageError, match="needs root"):
        resolve_base(cli, variant, quiet)  # type: ignore[arg-type]
    assert run.calls == []
