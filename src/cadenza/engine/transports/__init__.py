"""Ways a message leaves: SMTP to the rep's server, or capture into the database."""
