package types

// The tags of a Result.
const (
	ResultOk  uint8 = 0
	ResultErr uint8 = 1
)

// Result is WIT's result<T, E>: a value or an error.
type Result[T any, E any] struct {
	tag   uint8
	ok    T
	error E
}

// Ok is the result holding value.
func Ok[T any, E any](value T) Result[T, E] {
	return Result[T, E]{tag: ResultOk, ok: value}
}

// Err is the result holding the error err.
func Err[T any, E any](err E) Result[T, E] {
	return Result[T, E]{tag: ResultErr, error: err}
}

// Tag is ResultOk or ResultErr.
func (r Result[T, E]) Tag() uint8 {
	return r.tag
}

// IsOk says whether the result holds a value.
func (r Result[T, E]) IsOk() bool {
	return r.tag == ResultOk
}

// IsErr says whether the result holds an error.
func (r Result[T, E]) IsErr() bool {
	return r.tag == ResultErr
}

// Ok is the value; it panics on an error.
func (r Result[T, E]) Ok() T {
	if r.tag != ResultOk {
		panic("wit types: Ok() of an error result")
	}
	return r.ok
}

// Err is the error; it panics on a value.
func (r Result[T, E]) Err() E {
	if r.tag != ResultErr {
		panic("wit types: Err() of an ok result")
	}
	return r.error
}
