"""Running closeloop: the embedded servers, `closeloop up`'s process restarter and the file
that lets other commands find it, the demo day, and reconciliation."""
