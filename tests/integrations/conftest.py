"""The delivery tests' world, shared: a small test sequence (autouse) and the fake Twilio + SendGrid server."""

from tests.delivery.test_dispatch import fake, templates  # noqa: F401 - fixtures
