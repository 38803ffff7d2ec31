"""One-stop hospital settlement for insurers: layered settlement, roster of covered persons, records."""
