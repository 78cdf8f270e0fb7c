"""Programs that the guarantee tests run as real processes (and kill)."""
