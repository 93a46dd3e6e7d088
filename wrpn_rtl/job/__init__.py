"""The main job: prepare a network, generate, simulate, synthesize, report (the CLI's steps)."""
