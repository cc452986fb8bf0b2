"""`worker.urls`: a URL as it may be shown keeps where it goes and loses how to get in."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.rules.model import Department
from worker.urls import has_credentials, private_target, safe_url, scrub_urls

# Capitals appear nowhere else in the URLs drawn (names, hosts, paths), so a secret found in
# the output came from where the secret was.
SECRET_CHARS = string.ascii_uppercase + string.digits + "-._~!$*+,;"
secrets = st.text(SECRET_CHARS, min_size=8, max_size=30).filter(
    lambda s: any(c.isupper() for c in s)
)
names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10)
hosts = st.sampled_from(["water.example.cn", "10.1.2.3", "[2001:db8::1]", "127.0.0.1"])
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
paths = st.sampled_from(["", "/", "/hooks/water", "/a/b;c"])


@st.composite
def urls_with_secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    hidden: list[str] = []
    userinfo = ""
    if draw(st.booleans()):
        user, password = draw(secrets), draw(st.one_of(st.just(None), secrets))
        userinfo = user + (f":{password}" if password is not None else "") + "@"
        hidden += [user] + ([password] if password else [])
    pairs = draw(st.lists(st.tuples(names, secrets), max_size=3))
    hidden += [value for _, value in pairs]
    query = "&".join(f"{name}={value}" for name, value in pairs)
    scheme = draw(st.sampled_from(["http", "https"]))
    url = f"{scheme}://{userinfo}{draw(hosts)}{draw(ports)}{draw(paths)}"
    return (url + (f"?{query}" if query else ""), hidden)


@given(urls_with_secrets())
def test_a_safe_url_keeps_the_place_and_loses_every_credential(
    case: tuple[str, list[str]],
) -> None:
    url, hidden = case
    shown = safe_url(url)
    for secret in hidden:
        assert secret not in shown
    original, safe = urlsplit(url), urlsplit(shown)
    assert (safe.scheme, safe.hostname, safe.port, safe.path) == (
        original.scheme,
        original.hostname,
        original.port,
        original.path,
    )
    assert safe.username is None
    assert safe.password is None
    assert has_credentials(url) == ("@" in original.netloc)


@given(
    urls_with_secrets(),
    st.text(string.ascii_lowercase + " :", max_size=20),
    st.sampled_from([" ", "\n", "'", '"', "<", "`"]),
)
def test_urls_inside_text_are_made_safe(
    case: tuple[str, list[str]], around: str, edge: str
) -> None:
    url, hidden = case
    text = f"{around}{edge}error reaching {url}{edge}{around}"
    scrubbed = scrub_urls(text)
    assert safe_url(url) in scrubbed
    for secret in hidden:
        assert secret not in scrubbed


@given(urls_with_secrets())
def test_the_rules_refuse_a_department_url_with_a_user_or_password(
    case: tuple[str, list[str]],
) -> None:
    url, _ = case
    department = {"id": "water", "name": {"zh": "水务", "en": "Water"}, "secret_env": "S_WATER"}
    if has_credentials(url):
        with pytest.raises(ValidationError, match="must not carry a user name or password"):
            Department.model_validate({**department, "url": url})
    else:
        assert Department.model_validate({**department, "url": url}).url == url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:9900/hooks", "loopback"),
        ("http://127.8.0.1/hooks", "loopback"),
        ("http://[::1]/hooks", "loopback"),
        ("http://localhost:8080/", "local name"),
        ("http://api.localhost/", "local name"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.5/", "private"),
        ("http://172.16.4.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
    ],
)
def test_targets_inside_the_network_are_named(url: str, kind: str) -> None:
    reason = private_target(url)
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "url", ["https://water.example.cn/hooks", "http://8.8.8.8/", "http://[2606:4700::1]/"]
)
def test_public_targets_are_not(url: str) -> None:
    assert private_target(url) is None
