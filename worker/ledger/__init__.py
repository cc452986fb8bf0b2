"""The ledger: the only code that writes state (cases, tasks, deliveries, callbacks) and
the audit events that record each change. `lifecycle` holds the transition tables and moves;
`audit` the keyed hash chain and its verification; `audit_keys` and `audit_anchor` the keys
and the signed checkpoints that make it prove what it claims."""
