"""Image uploads through the gateway: fal's storage calls served under ``/rest/storage`` and ``/cdn``, forwarded to
fal's storage API with the gateway's key (docs/protocol.md §7)."""
