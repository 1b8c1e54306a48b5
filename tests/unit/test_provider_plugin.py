"""The plugin process, started as the language host starts it (``python provider``), serves the schema over gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from celery_platform import __version__
from celery_platform.package.schema import package_schema

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@pytest.fixture
def plugin_port(tmp_path: Path) -> Iterator[int]:
    """Run `python <repo>/<main> <engine>` from a foreign directory, as RunPlugin does, and yield its port."""
    main = Path("provider") / yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text()).get("main", ".")
    # Nothing listens on the engine address: serving the schema must not need the engine.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / main), "127.0.0.1:9"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line: list[str] = []
    reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(STARTUP_SECONDS)
    try:
        if not first_line or not first_line[0].strip().isdigit():
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"the plugin did not print its port: {first_line!r}\n{stderr}")
        yield int(first_line[0])
    finally:
        process.kill()
        process.wait(timeout=10)


def test_the_plugin_serves_the_schema_derived_from_the_args_and_its_version(plugin_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{plugin_port}") as channel:
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        schema = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=30).schema)
        info = stub.GetPluginInfo(empty_pb2.Empty(), timeout=30)
    assert schema["name"] == "celery-platform"
    assert list(schema["resources"]) == ["celery-platform:index:CeleryPlatform"]
    assert schema == package_schema()
    assert info.version == __version__
