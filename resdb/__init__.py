"""resdb: the regional social-resource directory (store, index, geography, import/export, CLI, web)."""
