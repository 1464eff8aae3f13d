"""Running student code: the child evaluator and everything the parent needs to talk to it."""
