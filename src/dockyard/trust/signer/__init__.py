"""The signer: holds the server's timestamp and snapshot private keys and signs with them.

In-process by default (``LocalSigner``); ``dockyard signer`` runs it as its own process that
the server reaches over mutual TLS (``RemoteSigner``), so the internet-facing process never
holds these keys.
"""
