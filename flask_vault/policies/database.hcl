# flask-vault: the app's policy for dynamic database credentials (VAULT_DATABASE_ROLE).
# Placeholders: ${database_mount} ${database_role} (render: flask vault policy database).
# Credentials of one role (dynamic, or static); renew and revoke the leases they come with.
# sys/leases/* take a lease id, which only the process that got the credentials holds.

path "${database_mount}/creds/${database_role}" {
  capabilities = ["read"]
}

path "${database_mount}/static-creds/${database_role}" {
  capabilities = ["read"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/revoke" {
  capabilities = ["update"]
}
