"""Moving work between processes: the broker and its transport, the transactional outbox,
the intake queue's reliable consumer, and dead letters of messages that cannot be used."""
