"""Checks of the rendered manifests with independent oracles: schemas, checkov and admission arithmetic."""
