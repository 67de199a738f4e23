"""A local stand-in for the AWS services the workshop uses, on one HTTP endpoint."""
