// Package types holds the generic WIT types of Go bindings: option, result and tuples.
package types

// The tags of an Option.
const (
	OptionNone uint8 = 0
	OptionSome uint8 = 1
)

// Option is WIT's option<T>: a value, or none.
type Option[T any] struct {
	tag   uint8
	value T
}

// None is the option without a value.
func None[T any]() Option[T] {
	return Option[T]{tag: OptionNone}
}

// Some is the option holding value.
func Some[T any](value T) Option[T] {
	return Option[T]{tag: OptionSome, value: value}
}

// Tag is OptionNone or OptionSome.
func (o Option[T]) Tag() uint8 {
	return o.tag
}

// IsSome says whether the option holds a value.
func (o Option[T]) IsSome() bool {
	return o.tag == OptionSome
}

// IsNone says whether the option is empty.
func (o Option[T]) IsNone() bool {
	return o.tag == OptionNone
}

// Some is the value; it panics on none.
func (o Option[T]) Some() T {
	if o.tag != OptionSome {
		panic("wit types: Some() of an empty option")
	}
	return o.value
}

// SomeOr is the value, or fallback on none.
func (o Option[T]) SomeOr(fallback T) T {
	if o.tag != OptionSome {
		return fallback
	}
	return o.value
}
