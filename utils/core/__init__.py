"""The ground every job stands on: the typed config, checkpoint kinds and files, the CLI wrapper."""
