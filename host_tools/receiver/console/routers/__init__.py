"""One module per resource (STYLE rule 17); each exposes `routes`."""
