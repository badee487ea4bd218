"""Migration scripts, oldest first; each revision has a descriptive file name."""
