"""The HTTP ingest service (``engagement ingest``) and the native-format file publisher."""
