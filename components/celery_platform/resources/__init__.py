"""The ComponentResources: they wire the pure builders into Pulumi resources, and nothing more."""
