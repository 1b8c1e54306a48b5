"""Pure builders: pod specs, commands, probes and the admission arithmetic. No Pulumi resources here."""
