"""`sm-entry serve`: the HTTP front on port 8080 and the model server it supervises."""
