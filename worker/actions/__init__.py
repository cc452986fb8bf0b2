"""What people do to a case outside the pipeline's own stages: a department working its task,
a supervisor stepping in."""
