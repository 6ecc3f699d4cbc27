"""Sources of routes: static files, NATS registration, the admin API, service announcements."""
