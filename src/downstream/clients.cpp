// placeholder: downstream/clients
