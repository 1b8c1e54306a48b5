"""The ``celery-platform`` Pulumi component package: CeleryPlatform, hosted for every Pulumi language.

``PulumiPlugin.yaml`` (``main: provider``) makes the Python language host run ``provider/__main__.py``,
which serves the components of ``provider/celery_platform.py`` with a schema that
``pulumi.provider.experimental`` infers from their type annotations and docstrings.
"""
