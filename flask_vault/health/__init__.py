"""``/health/vault`` and ``flask vault status``: can this app instance do its job, as far as Vault is concerned?

The answer is ``application/health+json`` in the shape of the IETF draft "Health Check
Response Format for HTTP APIs": a ``status`` (``pass``, ``warn`` or ``fail``) and
``checks`` keyed ``vault:server``, ``vault:login``, ``vault:secrets``, ``vault:cache`` and
(with database engines attached) ``vault:database`` and (with a database secrets engine
role) ``vault:lease``, each a list of objects with their own
``status`` (and, with details, ``componentType``, ``observedValue``, ``observedUnit``,
``time``, ``output`` and a few fields of their own).

The overall status is about the app, not about Vault: while every filled config key is
still served (fresh from Vault, from the cache within ``VAULT_STALE_MAX_AGE``, or from a
configured fallback), a sealed or unreachable Vault only makes it ``warn`` (HTTP 200),
so an outage of Vault does not pull every instance out of the load balancer at once. It
is ``fail`` (HTTP 503) when a needed secret has no usable value, a cached one has passed
the stale limit, the login is refused, the database refuses the credentials in Vault, or
a database lease has expired.

One module per concern, top to bottom:

* :mod:`~flask_vault.health.view`: the blueprint, details gating, headers;
* :mod:`~flask_vault.health.format`: the report as text for ``flask vault status``;
* :mod:`~flask_vault.health.monitor`: one probe per ``VAULT_HEALTH_CACHE_SECONDS`` window;
* :mod:`~flask_vault.health.probe`: what a window asks Vault (the server probe of
  :mod:`flask_vault.vault.probe`, shared with ``VaultClient.health_check()``, and one
  token ``lookup-self``);
* :mod:`~flask_vault.health.checks`: the checks, each a small function, and the list
  ``CHECKS``; adding a check is one function and one entry in that list;
* :mod:`~flask_vault.health.report`: the report and the one rule that combines the checks.

No body ever holds a token, an accessor, a secret value or a secret_id.
"""
