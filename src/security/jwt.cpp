// placeholder: security/jwt
