"""Routes to the model: which serve it, their health, their licences."""
