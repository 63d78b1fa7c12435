"""Running graphs: Session, the reference interpreter, variable state."""
