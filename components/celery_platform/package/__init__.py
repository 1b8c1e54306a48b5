"""The ``celery-platform`` Pulumi component package: CeleryPlatform for every Pulumi language.

``schema`` derives the package schema from CeleryPlatformArgs, ``inputs`` reads the engine's
Construct inputs through the stack config's parser, ``provider`` serves both to the engine
(``provider/__main__.py`` runs it), and ``reference`` writes docs/configuration.md from the same schema.
"""
