"""The daemon host: lifecycle and signals, systemd notify, the HTTP status/metrics endpoint."""
