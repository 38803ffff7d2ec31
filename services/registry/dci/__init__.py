"""The DCI Social Registry API v1.0.0 on the registry (docs/dci.md).

* ``envelope``  – the ``{signature, header, message}`` envelope: header validation, the spec's error and
  reason codes, ACK/NACK/ERR, and the Ed25519 message signature (produced and checked);
* ``records``   – households and persons as the spec's Household (Group) and Person records, masked by scope;
* ``queries``   – the three query types (``idtype-value``, ``expression``, ``predicate``) over the registry;
* ``senders``   – the registered DCI senders (sender_id, partner client, callback URI, public key);
* ``service``   – transactions (search, subscribe, unsubscribe, txn status) and subscriptions;
* ``worker``    – the background worker that calls senders back and delivers notifications, with retries
  and a dead-letter list (never from inside a request);
* ``consumer``  – household changes from ``jz.registry.v1`` (the outbox, not polling) → notifications;
* ``token``     – ``POST /oauth2/client/token`` over the partner client registry (benefits);
* ``views``     – the ``/registry/...`` paths exactly as the spec names them, and their admin routes.
"""
