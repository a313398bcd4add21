"""The in-app inbox: what a tenant's customer's browser polls, and the events it reports."""
