// placeholder: server/daemon
