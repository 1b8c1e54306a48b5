"""The provider that serves CeleryPlatform to the Pulumi engine, for ``pulumi package add`` from any language.

It answers GetSchema with the schema derived from CeleryPlatformArgs and Construct by creating the same
CeleryPlatform that the stack program creates, from inputs read by the stack config's parser.
A refused input is one ValidationError, handed to the engine as an InputPropertiesError: the engine
shows its sentences, never a traceback of the provider.
"""

from __future__ import annotations

import json
import sys

import pulumi
from pulumi.errors import InputPropertiesError
from pulumi.provider import ConstructResult, Provider
from pulumi.provider import main as serve_provider

from celery_platform import __version__
from celery_platform.config.problems import ValidationError
from celery_platform.package.inputs import platform_args
from celery_platform.package.schema import output_attributes, package_schema
from celery_platform.resources.platform import TYPE_TOKEN, CeleryPlatform


class CeleryPlatformProvider(Provider):
    """Hosts ``celery-platform:index:CeleryPlatform``, a component, for every Pulumi language."""

    def __init__(self) -> None:
        super().__init__(__version__, json.dumps(package_schema()))

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: pulumi.Inputs,
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        """Create a CeleryPlatform from the engine's inputs and return its outputs by their schema names."""
        if resource_type != TYPE_TOKEN:
            raise pulumi.RunError(f"unknown resource type {resource_type!r}: this package offers {TYPE_TOKEN}")
        try:
            platform = CeleryPlatform(name, platform_args(name, inputs), options)
        except ValidationError as err:
            # The engine prints this error's message alone ("resource 'x' has a problem: ..."); a RunError
            # would read "Unexpected <class ...>". The list must be given, even empty: without one, the
            # SDK's servicer fails on the gRPC status it builds (pulumi 3.272).
            raise InputPropertiesError(str(err), []) from err
        state = {schema_name: getattr(platform, attribute) for schema_name, attribute in output_attributes().items()}
        return ConstructResult(urn=platform.urn, state=state)


def serve() -> None:
    """Serve the package over gRPC: print the port, then answer the engine until it stops the process."""
    serve_provider(CeleryPlatformProvider(), sys.argv[1:])
