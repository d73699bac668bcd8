// placeholder: security/api_key_store
