"""A faithful built-in simulator of fal's queue API for Seedance 1.5 Pro; the app lives in ``service.simulator.app``."""
