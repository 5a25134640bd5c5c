"""Bottom layer: errors, files written atomically, checks and the one training loop."""
