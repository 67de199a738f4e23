"""IAM enforced offline: runtime roles' temporary credentials, judged against the roles' identity policies."""
