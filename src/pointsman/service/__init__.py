"""The SDK for services behind a gateway."""
