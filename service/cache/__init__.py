"""Result cache and single-flight for identical requests."""
