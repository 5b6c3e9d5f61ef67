"""`wrap(client)`: an SDK client, or an agent framework's model object, that routes."""
