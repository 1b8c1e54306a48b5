"""What users type: the args types with their rules, and the stack config that parses into them."""
