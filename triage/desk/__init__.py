"""The service layer: one function per use case, one transaction each, the acting user passed
in, errors as `DeskError`s. The CLI and the web both call it; neither holds business rules."""
