"""The shipped source mappings (TOML), one per vendor export: see docs/sources/."""
