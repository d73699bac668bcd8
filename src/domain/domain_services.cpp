// placeholder: domain/domain_services
