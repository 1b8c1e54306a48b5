"""The ``celery-platform`` Pulumi component package: CeleryPlatform, hosted for every Pulumi language.

``provider/PulumiPlugin.yaml`` makes the Python language host run this folder, ``provider/__main__.py``,
which serves the components of ``provider/component.py`` with a schema that
``pulumi.provider.experimental`` infers from their type annotations and docstrings.
"""
