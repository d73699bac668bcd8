// placeholder: security/internal_credential
