# flask-vault: the rotator's policy (flask vault rotate, rollback, restore, put, backup).
# Placeholders: ${mount} ${prefix} ${environment} ${transit_mount} ${transit_key}
# (render: flask vault policy rotator).
# Writes are create/update only: no delete, destroy or metadata changes, so KV version
# history (which rollback and recovery rely on) cannot be erased with this token.

path "${mount}/data/${prefix}/${environment}/*" {
  capabilities = ["create", "read", "update"]
}

path "${mount}/metadata/${prefix}/${environment}/*" {
  capabilities = ["list", "read"]
}

# BEGIN transit: backups encrypted with VAULT_BACKUP_TRANSIT_KEY
path "${transit_mount}/encrypt/${transit_key}" {
  capabilities = ["update"]
}

path "${transit_mount}/decrypt/${transit_key}" {
  capabilities = ["update"]
}
# END transit
