"""XEP-0363 HTTP File Upload (`http_file_share`) with `http_ports = { 0 }`: the
slot's PUT and GET URLs carry the port the HTTP server was actually bound to
(the one the system chose), and a file uploaded there is downloaded again
whole. lilt only: Prosody cannot report a port it let the system choose."""

from __future__ import annotations

import http.client
import time
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from lilt_harness.client import Client, error_condition, run
from lilt_harness.config import DOMAIN, TEST_MODULES, Component, base_config

NS_UPLOAD = "urn:xmpp:http:upload:0"
UPLOAD = f"upload.{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
USERS = [("alice", DOMAIN, "alice-pw")]

pytestmark = pytest.mark.lilt_only


def config():
    c = base_config(
        extra_globals={
            "modules_enabled": TEST_MODULES,
            "http_ports": [0],
            "http_interfaces": ["127.0.0.1"],
            "https_ports": [],
        }
    )
    c.hosts[UPLOAD] = Component("http_file_share", {"http_file_share_size_limit": 1000})
    return c


def request(port: int, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """`method` on `url`, sent to 127.0.0.1:`port` (the URL's host name is the
    service's, which need not resolve here)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, parts.path, body=body, headers={"Host": parts.netloc, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_slot_urls_carry_the_bound_port(start_server):
    server = start_server(config(), users=USERS)
    deadline = time.monotonic() + 10  # the line after the c2s ones
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    port = server.listening["http"][1]
    assert port != 0
    data = b"hello, file share\n" * 10

    async def slot(size: int):
        async with Client(server, ALICE, "alice-pw") as c:
            return await c.iq(
                f"<iq type='get' to='{UPLOAD}' id='{{id}}'><request xmlns='{NS_UPLOAD}' "
                f"filename='hello.txt' size='{size}' content-type='text/plain'/></iq>"
            )

    reply = run(slot(len(data)))
    assert reply.get("type") == "result", ET.tostring(reply)
    put = reply.find(f".//{{{NS_UPLOAD}}}put")
    get_url = reply.find(f".//{{{NS_UPLOAD}}}get").get("url")
    put_url = put.get("url")
    for url in (put_url, get_url):
        parts = urllib.parse.urlsplit(url)
        assert (parts.scheme, parts.hostname, parts.port) == ("http", UPLOAD, port), url
    headers = {h.get("name"): h.text for h in put.findall(f"{{{NS_UPLOAD}}}header")}
    status, _ = request(port, "PUT", put_url, data, {**headers, "Content-Type": "text/plain"})
    assert status in (200, 201), status
    status, body = request(port, "GET", get_url)
    assert (status, body) == (200, data)
    # Too large for the limit: refused with the limit.
    reply = run(slot(5000))
    assert error_condition(reply) == ("modify", "not-acceptable"), ET.tostring(reply)
