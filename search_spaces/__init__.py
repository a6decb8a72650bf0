"""Built-in search spaces (YAML), installed as ``autocompress.builtin_spaces``."""
