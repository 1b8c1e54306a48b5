"""An external broker over TLS: a redis-server with only a TLS port, and a CA made for the test.

The render's own wait-for-broker script (redis-cli ``--tls --cacert``), the broker URL
(``$(CELERY_PLATFORM_BROKER_URL)?ssl_cert_reqs=required&ssl_ca_certs=...``), the file probes and the metrics
exporter run as rendered. The URL and the CA live in Secrets the platform does not own, as with a
managed Redis.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.runtime import harness
from tests.runtime.conftest import free_port
from tests.runtime.harness import celery_client, wait_until
from tests.runtime.test_scenario_metrics import scrape, value

HOST = "master.celery.abc123.use1.cache.amazonaws.com"
PASSWORD = "tls-Pa55word-0123456789"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(tmp: Path, label: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed test CA; returns its PEM file, certificate and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"test CA {label}"))
        .issuer_name(_name(f"test CA {label}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp / f"ca-{label}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_cert(tmp: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """A server certificate for the broker's name and 127.0.0.1, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(HOST), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "server.crt", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class TLSBroker:
    port: int
    ca: Path
    other_ca: Path
    process: subprocess.Popen[bytes]

    def url(self, query: bool = True) -> str:
        base = f"rediss://:{PASSWORD}@127.0.0.1:{self.port}/0"
        return f"{base}?ssl_cert_reqs=required&ssl_ca_certs={self.ca}" if query else base


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TLSBroker]:
    """A redis-server listening only on a TLS port, its certificate signed by a test CA."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `apt-get install -y redis-server` (never skipped)")
    ca_path, ca, ca_key = make_ca(tmp_path, "broker")
    other_ca, _, _ = make_ca(tmp_path, "other")
    cert, key = make_server_cert(tmp_path, ca, ca_key)
    port = free_port()
    argv = [
        *(binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
        *("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca_path)),
        *("--tls-auth-clients", "no", "--requirepass", PASSWORD, "--dir", str(tmp_path)),
        *("--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"),
    ]
    log = (tmp_path / "redis-tls.log").open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    client = redis.Redis(
        host="127.0.0.1", port=port, password=PASSWORD, ssl=True, ssl_ca_certs=str(ca_path), ssl_cert_reqs="required"
    )

    def pings() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    if not wait_until(pings, timeout=10):
        process.terminate()
        pytest.fail(f"redis-server did not answer over TLS; see {tmp_path}/redis-tls.log")
    yield TLSBroker(port, ca_path, other_ca, process)
    client.close()
    process.terminate()
    process.wait(timeout=10)


def external(port: int) -> str:
    """The stack's broker key: a managed Redis by DNS name, URL and CA in Secrets of its own."""
    return (
        "type: external\n"
        "external:\n"
        "  urlSecret: {name: managed-redis, key: url}\n"
        f"  host: {HOST}\n"
        f"  port: {port}\n"
        "  tls: true\n"
        "  caSecret: {name: managed-redis-ca, key: ca.crt}\n"
        "  cidr: 10.20.0.0/16\n"
    )


@pytest.fixture
def run_external(tmp_path: Path, tls_broker: TLSBroker) -> Iterator[Callable[[str], harness.Kubelet]]:
    """Runs the dev stack's pods against the TLS broker, with the CA Secret holding ``ca_file``."""
    made: list[harness.Kubelet] = []

    exporter_port = free_port()

    def make(ca_file: str) -> harness.Kubelet:
        manifests = harness.Manifests(
            harness.render("dev", {"broker": external(tls_broker.port), "monitoring": f"port: {exporter_port}"})
        )
        values = harness.test_secret_values(PASSWORD, "unused", 0)
        cluster = harness.Cluster(
            manifests=manifests,
            secret_values=values,
            service_addresses={},
            external_secrets={
                "managed-redis": {"url": tls_broker.url(query=False)},
                "managed-redis-ca": {"ca.crt": Path(ca_file).read_text()},
            },
            host_addresses={HOST: "127.0.0.1"},
        )
        node = harness.Kubelet(manifests, cluster, tmp_path / f"kubelet-{len(made)}")
        node.exporter_port = exporter_port  # type: ignore[attr-defined]
        made.append(node)
        return node

    yield make
    for node in made:
        node.shutdown()


def test_a_worker_and_beat_reach_an_external_broker_over_tls_verified_by_its_ca(
    run_external: Callable[[str], harness.Kubelet], tls_broker: TLSBroker
) -> None:
    node = run_external(str(tls_broker.ca))
    own_redis = [d for d in node.manifests.of_kind("StatefulSet") if d["metadata"]["name"] == "redis"]
    assert not own_redis, "no Redis of ours"
    worker, beat = node.create_pod("celery-main"), node.create_pod("celery-beat")
    assert wait_until(lambda: worker.ready and beat.ready, timeout=90), worker.describe() + worker.log() + beat.log()
    assert "init wait-for-broker completed" in [text for _, text in worker.events]
    assert worker.main.env["CELERY_BROKER_URL"].endswith(
        f"?ssl_cert_reqs=required&ssl_ca_certs={worker.volume_dirs['broker-ca']}/ca.crt"
    )
    assert f"rediss://:**@127.0.0.1:{tls_broker.port}" in worker.log()

    client = celery_client(tls_broker.url(), ["default"])
    result = client.send_task("sample_app.tasks.short_task", args=(2, 3), queue="default")
    assert wait_until(lambda: result.state == "SUCCESS", timeout=30), worker.log()
    assert result.get(timeout=5) == 5
    # Liveness holds: the heartbeat turns with the broker connection over TLS.
    assert all(p.exit_code == 0 for p in worker.probe_results("liveness")), worker.describe()
    client.close()


def test_wait_for_broker_keeps_waiting_when_the_broker_certificate_is_not_signed_by_the_given_ca(
    run_external: Callable[[str], harness.Kubelet], tls_broker: TLSBroker
) -> None:
    node = run_external(str(tls_broker.other_ca))
    pod = node.create_pod("celery-main")
    assert wait_until(lambda: pod.log().count("waiting for the broker at 127.0.0.1") >= 3, timeout=30), pod.log()
    assert not pod.in_main, "the worker must not start against a broker it cannot verify"


def test_the_exporter_reads_queue_lengths_and_workers_over_tls_verified_by_the_ca(
    run_external: Callable[[str], harness.Kubelet], tls_broker: TLSBroker
) -> None:
    node = run_external(str(tls_broker.ca))
    port: int = node.exporter_port  # type: ignore[attr-defined]
    exporter = node.create_pod("celery-exporter")
    assert wait_until(lambda: exporter.ready, timeout=60), exporter.describe() + exporter.log()
    client = celery_client(tls_broker.url(), ["default", "email"])
    for i in range(3):
        client.send_task("sample_app.tasks.short_task", args=(i, 1), queue="default")
    client.send_task("sample_app.tasks.short_task", args=(9, 1), queue="email")

    def depths() -> tuple[float | None, float | None]:
        samples = scrape(port)
        return value(samples, "celery_queue_messages", queue="default"), value(
            samples, "celery_queue_messages", queue="email"
        )

    assert wait_until(lambda: depths() == (3, 1), timeout=30), (depths(), exporter.log())
    # A worker over TLS drains the queue; the exporter sees it online (events over TLS) and the queue empty.
    worker = node.create_pod("celery-main")
    assert wait_until(lambda: worker.ready, timeout=90), worker.describe() + worker.log()

    def drained_and_seen() -> bool:
        samples = scrape(port)
        online = value(samples, "celery_workers_online", pool="main")
        return value(samples, "celery_queue_messages", queue="default") == 0 and online == 1

    assert wait_until(drained_and_seen, timeout=60), (scrape(port), exporter.log())
    assert "certificate verify failed" not in exporter.log()
    assert exporter.restarts == 0 and all(r.exit_code == 0 for r in exporter.probe_results("readiness"))
    client.close()


def test_the_exporter_refuses_a_broker_its_ca_does_not_verify_and_says_so(
    run_external: Callable[[str], harness.Kubelet], tls_broker: TLSBroker
) -> None:
    node = run_external(str(tls_broker.other_ca))
    port: int = node.exporter_port  # type: ignore[attr-defined]
    exporter = node.create_pod("celery-exporter")
    assert wait_until(lambda: "certificate verify failed" in exporter.log(), timeout=60), exporter.log()
    assert not exporter.ready, "never ready against a broker it cannot verify"
    assert any(r.exit_code != 0 for r in exporter.probe_results("readiness")), exporter.describe()
    samples = scrape(port)
    assert value(samples, "celery_queue_messages", queue="default") is None, "no depth read from an unverified broker"
