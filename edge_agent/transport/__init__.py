"""MQTT transport: the topic scheme (``topics``) and the client wrapper."""
