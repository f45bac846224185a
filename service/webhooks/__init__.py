"""Webhooks: outbound delivery with both signatures, tenant secrets, and verification of fal's inbound callbacks."""
