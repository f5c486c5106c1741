"""Command line interface: one ``deepfocus`` entry point with subcommands."""
