"""Python SDK (``HygieiaClient``, account and record flows) and the ``hygieia`` CLI.

Every cryptographic step happens here, on the user's machine; the server gets
ciphertext, public keys and KDF outputs only.
"""
