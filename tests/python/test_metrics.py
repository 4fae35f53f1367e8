"""`/metrics` (issue 18): mod_http_openmetrics as Prosody serves it with `statistics =
"internal"`, read by a real OpenMetrics parser (prometheus_client's).

With a logged-in client in a MUC room and a failed login behind it, the page parses, is
served as `application/openmetrics-text`, and carries Prosody's families where lilt has
the figure (`prosody_mod_c2s__connections` by host, type and IP family,
`prosody_mod_muc__live_room`), the process families (`process_cpu_seconds`,
`process_resident_memory_bytes`, ...) and lilt's own in the same style
(`lilt_mod_muc__occupants`, `lilt_mod_saslauth__authentications`,
`lilt_mod_bosh__sessions`, `lilt_mod_smacks__hibernating` and `…__hibernations` once a
guest with XEP-0198 loses its connection). `openmetrics_allow_ips`/`openmetrics_allow_cidr` decide who
may read it (403 otherwise), and without `statistics` the page is 404, as in Prosody.
Differential: with one client in one room on lilt and on Debian's Prosody 0.12, the
families lilt serves under Prosody's names have Prosody's samples exactly.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import running_server
from lilt_harness import paths
from lilt_harness.client import Client, run
from lilt_harness.config import DOMAIN, TEST_MODULES
from lilt_harness.servers import free_port
from lilt_harness.muc import MUC_HOST, anonymous, muc_config, user

pytestmark = pytest.mark.lilt_only


def metrics_config(**extra):
    return muc_config(
        extra_globals={
            "modules_enabled": TEST_MODULES + ["http_openmetrics", "smacks"],
            "http_ports": [0],
            "https_ports": [],
            "http_interfaces": ["127.0.0.1"],
            **extra,
        }
    )


def http_port(server) -> int:
    if server.kind == "prosody":
        return server.http_port
    deadline = time.monotonic() + 10
    while "http" not in server.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.listening["http"][1]


def fetch(server) -> tuple[int, str, str]:
    url = f"http://127.0.0.1:{http_port(server)}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def samples(page: str) -> dict[str, list]:
    families = {f.name: f for f in text_string_to_metric_families(page)}
    return families


def value(families, family: str, sample: str, **labels) -> float:
    for s in families[family].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no {sample}{labels} in {families[family].samples}")


def test_metrics_page(start_server):
    server = start_server(
        metrics_config(statistics="internal"),
        users=[("alice", DOMAIN, "alice-pw")],
    )

    async def body():
        bad = await Client(server, f"alice@{DOMAIN}", "wrong").login()
        assert not bad.ok
        alice = user(server, "alice")
        await alice.connect()
        await alice.available()
        alice.send(
            f"<presence to='room@{MUC_HOST}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        )
        await alice.expect(
            lambda e: e.tag.endswith("presence") and e.get("from") == f"room@{MUC_HOST}/alice",
            what="self-presence from the room",
        )
        status, content_type, page = fetch(server)
        assert status == 200, page
        assert content_type.startswith("application/openmetrics-text"), content_type
        assert page.endswith("# EOF\n")
        families = samples(page)
        assert families["prosody_mod_c2s__connections"].type == "gauge"
        assert value(
            families,
            "prosody_mod_c2s__connections",
            "prosody_mod_c2s__connections",
            host=DOMAIN,
            type="c2s",
            ip_family="ipv4",
        ) == 1
        assert value(families, "prosody_mod_muc__live_room", "prosody_mod_muc__live_room", host=MUC_HOST) == 1
        assert value(families, "lilt_mod_muc__occupants", "lilt_mod_muc__occupants", host=MUC_HOST) == 1
        auth = "lilt_mod_saslauth__authentications"
        assert families[auth].type == "counter"
        assert value(families, auth, auth + "_total", host=DOMAIN, result="success") >= 1
        assert value(families, auth, auth + "_total", host=DOMAIN, result="failure") >= 1
        assert value(families, "lilt_mod_bosh__sessions", "lilt_mod_bosh__sessions") == 0
        assert families["process_cpu_seconds"].type == "counter"
        assert value(families, "process_cpu_seconds", "process_cpu_seconds_total") > 0
        assert value(families, "process_resident_memory_bytes", "process_resident_memory_bytes") > 1e6
        start = value(families, "process_start_time_seconds", "process_start_time_seconds")
        assert abs(start - time.time()) < 600, start
        assert value(families, "process_open_fds", "process_open_fds") > 3
        assert value(families, "lilt_mod_smacks__hibernating", "lilt_mod_smacks__hibernating") == 0

        # A guest with XEP-0198 loses its connection: it hibernates.
        guest = anonymous(server)
        guest.xmpp.register_plugin("xep_0198")
        await guest.connect()
        await asyncio.sleep(0.5)
        guest.abort()
        deadline = time.monotonic() + 10
        while True:
            families = samples(fetch(server)[2])
            hibernating = value(families, "lilt_mod_smacks__hibernating", "lilt_mod_smacks__hibernating")
            if hibernating == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert hibernating == 1
        hibernations = "lilt_mod_smacks__hibernations"
        assert value(families, hibernations, hibernations + "_total", host="anon.localhost") == 1
        await alice.close()

    run(body())


def test_metrics_access_and_statistics_off(start_server):
    denied = start_server(metrics_config(statistics="internal", openmetrics_allow_ips=["192.0.2.1"]))
    assert fetch(denied)[0] == 403
    ranged = start_server(
        metrics_config(
            statistics="internal", openmetrics_allow_ips=[], openmetrics_allow_cidr="127.0.0.0/8"
        )
    )
    assert fetch(ranged)[0] == 200
    off = start_server(metrics_config())
    status, _, page = fetch(off)
    assert status == 404 and "No statistics provider configured" in page


# The families lilt serves under Prosody's names: the same samples as Prosody's.
SHARED_FAMILIES = ["prosody_mod_c2s__connections", "prosody_mod_muc__live_room"]


@pytest.mark.differential
def test_prosody_named_families_match_prosody(pki):
    """One client in one MUC room on lilt and on Debian's Prosody 0.12
    (`statistics_interval = "manual"` so that Prosody's gauges are fresh): the families
    lilt serves under Prosody's names have the same samples (labels and values)."""
    reason = paths.prosody_usable()
    if reason:
        pytest.skip(reason)
    found = {}
    for kind in ("lilt", "prosody"):
        port = free_port() if kind == "prosody" else 0
        config = metrics_config(statistics="internal", statistics_interval="manual")
        config.globals["http_ports"] = [port]
        config.hosts[MUC_HOST]["muc_room_locking"] = False
        with running_server(kind, pki, config, users=[("alice", DOMAIN, "alice-pw")]) as server:
            server.http_port = port

            async def body():
                alice = user(server, "alice")
                await alice.connect()
                await alice.available()
                alice.send(
                    f"<presence to='room@{MUC_HOST}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
                )
                await alice.expect(
                    lambda e: e.tag.endswith("presence") and e.get("from") == f"room@{MUC_HOST}/alice",
                    what="self-presence from the room",
                )
                loop = asyncio.get_running_loop()
                status, _, page = await loop.run_in_executor(None, fetch, server)
                assert status == 200, (kind, page)
                await alice.close()
                return samples(page)

            found[kind] = run(body())
    lilt, prosody = found["lilt"], found["prosody"]
    for family in SHARED_FAMILIES:
        assert family in prosody, sorted(prosody)
        want = sorted((s.name, sorted(s.labels.items()), s.value) for s in prosody[family].samples)
        got = sorted((s.name, sorted(s.labels.items()), s.value) for s in lilt[family].samples)
        assert got == want, (family, got, want)
        assert lilt[family].type == prosody[family].type
