// placeholder: server/http_listener
