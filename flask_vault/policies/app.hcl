# flask-vault: the app's policy. Read this app's secrets in one environment; nothing else.
# Placeholders: ${mount} ${prefix} ${environment} (render: flask vault policy app).
# KV v2 keeps values under <mount>/data/ and names and versions under <mount>/metadata/;
# "list" on a data/ path does nothing, so listing is granted on metadata/.

path "${mount}/data/${prefix}/${environment}/*" {
  capabilities = ["read"]
}

path "${mount}/metadata/${prefix}/${environment}/*" {
  capabilities = ["list"]
}
