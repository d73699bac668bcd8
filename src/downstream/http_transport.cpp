// placeholder: downstream/http_transport
