"""Exact forms a caller reads or stores: the compact handle text and the messages that tell a
user what to fix. (Mutation testing showed these were only loosely checked.)"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from intercede import FileRef, JobHandle
from intercede.config import _parse_endpoint


def test_the_compact_handle_form_is_exact() -> None:
    handle = JobHandle(
        backend="slurm+ssh", resource="submit@ce.example.org:22", id="4242_7", routing="ab/7"
    )
    assert str(handle) == "slurm+ssh://submit@ce.example.org:22/4242_7?ab/7"
    odd = JobHandle(backend="x", resource="u@[::1]:2/ ", id="7/1 ?", routing="r /?%")
    assert str(odd) == "x://u@[::1]:2%2F%20/7%2F1%20%3F?r%20/%3F%25"
    assert JobHandle.parse(str(odd)) == odd


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "expected [user@]host[:port], without spaces"),
        ("", "expected [user@]host[:port], without spaces"),
        ("@host", "expected a user name before '@'"),
        ("[::1", "expected an IPv6 address between '[' and ']'"),
        ("[]:22", "expected an IPv6 address between '[' and ']'"),
        ("[::1]x", "expected ':port' after ']'"),
        ("[::1]]:22", "expected ':port' after ']'"),
        ("::1", "put an IPv6 address in brackets: [2001:db8::1]:22"),
        (":22", "expected a host name"),
        ("h:0", "port must be a number from 1 to 65535"),
        ("h:65536", "port must be a number from 1 to 65535"),
        ("h:２２", "port must be a number from 1 to 65535"),
    ],
)
def test_endpoint_messages_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        _parse_endpoint(text)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("h:1", (None, "h", 1)),
        ("h:65535", (None, "h", 65535)),
        ("u@[2001:db8::1]:2222", ("u", "2001:db8::1", 2222)),
        ("a@b@h", ("a@b", "h", None)),
        ("h", (None, "h", None)),
    ],
)
def test_endpoint_bounds_are_inclusive(text: str, parsed: tuple[object, ...]) -> None:
    assert _parse_endpoint(text) == parsed


def test_a_path_outside_the_working_directory_says_so() -> None:
    with pytest.raises(ValidationError) as info:
        FileRef(name="../x", source="/etc/hosts")
    assert info.value.errors()[0]["msg"] == (
        "Value error, must be a relative path inside the working directory, without '..'"
    )
