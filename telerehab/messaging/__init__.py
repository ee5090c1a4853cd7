"""SMS and other channels: the outbox, delivery through a provider, inbound replies and webhooks."""
