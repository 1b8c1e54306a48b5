"""The ``celery-platform`` Pulumi component package: CeleryPlatform, hosted for every Pulumi language.

``provider/PulumiPlugin.yaml`` makes the Python language host run this folder, ``provider/__main__.py``,
which serves ``celery_platform.package.provider``: a schema derived from CeleryPlatformArgs, and a
Construct that builds the same CeleryPlatform as the stack program.
"""
