package types

// Unit is WIT's empty type: the value of a `result<_, E>` that succeeded.
type Unit struct{}
