"""Runbook URLs, property-based: every RFC 3986 http(s) URL with a host passes, junk does not, and the
ServiceOwnership model and the workload annotation check agree."""

from __future__ import annotations

import ipaddress

from hypothesis import example, given
from hypothesis import strategies as st

from ballast.api.common import is_http_url
from ballast.api.releasepolicy import RequiredAnnotations
from ballast.policy.workloads import annotation_problems

KEYS = RequiredAnnotations()
LETTERS = st.characters(categories=["Ll", "Lu", "Lo", "Nd"])


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in word]).map("".join)


labels = st.text(LETTERS, min_size=1, max_size=20).filter(lambda s: s.isprintable())
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
ports = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))
paths = st.text(st.characters(categories=["L", "N"], include_characters="/-._~%!$&'()*+,;=:@?#"), max_size=40)
urls = st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
                 st.one_of(any_case("http"), any_case("https")), hosts, ports, paths)


def runbook_problems(runbook: str) -> list[str]:
    annotations = {KEYS.owner: "payments", KEYS.alerts: "CheckoutDown", KEYS.runbook: runbook}
    return [p.problem for p in annotation_problems(annotations, KEYS)]


@given(urls)
def test_every_http_url_with_a_host_is_accepted(url):
    assert is_http_url(url)
    assert runbook_problems(url) == []


@given(urls, st.sampled_from([" ", "\t", "\n", "\u00a0", "\x00", "\x7f"]), st.data())
def test_whitespace_or_control_characters_anywhere_are_refused(url, bad, data):
    at = data.draw(st.integers(0, len(url)))
    broken = url[:at] + bad + url[at:]
    assert not is_http_url(broken)
    [problem] = runbook_problems(broken)
    assert problem.startswith(f"has annotation {KEYS.runbook}=") and problem.endswith(", not a URL")


@given(urls, st.sampled_from(["ftp", "file", "ws", "javascript", "mailto", "httpx", "htt"]))
def test_other_schemes_are_refused(url, scheme):
    assert not is_http_url(scheme + url[url.index(":"):])


@given(st.one_of(any_case("http"), any_case("https")), ports, paths)
def test_a_url_without_a_host_is_refused(scheme, port, path):
    assert not is_http_url(f"{scheme}://{port}/{path}")


@example("1.2.3.4")  # IPv4 goes without brackets
@example("::ffff:1.2.3.4")
@given(st.text(st.characters(categories=["L", "N"], include_characters=":."), min_size=1, max_size=30))
def test_a_bracketed_host_must_be_an_ip_literal(text):
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        if not text.startswith("v"):  # IPvFuture ("v1.x") is an IP literal too
            assert not is_http_url(f"https://[{text}]/runbook")
    else:
        assert is_http_url(f"https://[{text}]/runbook")


@given(st.one_of(st.text(max_size=80), st.builds(lambda a, b: f"http://{a}@{b}/", st.text(max_size=20),
                                                  st.text(max_size=20))))
def test_any_text_gets_an_answer_never_an_error(text):
    assert is_http_url(text) in (True, False)
