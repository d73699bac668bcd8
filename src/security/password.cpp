// placeholder: security/password
