"""Graph core: dtypes, static shapes, errors, Graph/Operation/Tensor, name scopes."""
