"""Cost budgets: reservation, settlement, usage and pricing adapters."""
