package types

// Tuple2 is WIT's tuple<A, B>.
type Tuple2[A any, B any] struct {
	F0 A
	F1 B
}

// Tuple3 is WIT's tuple<A, B, C>.
type Tuple3[A any, B any, C any] struct {
	F0 A
	F1 B
	F2 C
}

// Tuple4 is WIT's tuple<A, B, C, D>.
type Tuple4[A any, B any, C any, D any] struct {
	F0 A
	F1 B
	F2 C
	F3 D
}
