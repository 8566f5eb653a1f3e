"""The live target database: the connection, its shape as the policy sees it, and the SQL built from the policy."""
