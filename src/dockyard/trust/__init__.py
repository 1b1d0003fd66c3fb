"""Content trust: a Notary v1-compatible trust server (TUF metadata per GUN) and its signer."""
