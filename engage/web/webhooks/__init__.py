"""Provider webhooks: verify the signature, parse, normalise, then hand to the library.

One module per provider (``twilio``, ``sendgrid``), each an APIRouter.
"""
