"""Operator CLI over the admin API: ``seedance-gateway tenants ...``, ``keys ...`` and ``webhooks ...``.

It talks HTTP to a running gateway (never to Redis). ``register`` adds the command groups to a parser's
subcommands; ``main`` runs them on their own.
"""

from __future__ import annotations

from service.admin_cli.client import AdminClient, ApiError, Connection, Unreachable
from service.admin_cli.parser import main, register
from service.admin_cli.runner import run

__all__ = ["AdminClient", "ApiError", "Connection", "Unreachable", "main", "register", "run"]
