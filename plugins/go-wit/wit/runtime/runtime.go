// Package runtime is the memory side of the component ABI for Go plugins: where the host writes
// a call's arguments (cabi_realloc), and where the bindings put lists and strings they hand to
// the host.
//
// Go's garbage collector does not move objects, but it frees what no Go pointer refers to: memory
// known to the host only by address must be pinned until the call is done with it.
package runtime

import (
	"runtime"
	"unsafe"
)

// argumentPins keeps alive what the host allocated for an export's arguments, from
// cabi_realloc until the bindings have read them (Unpin).
var argumentPins runtime.Pinner

// Allocate returns size bytes aligned to align (at most 8, the ABI's largest), zeroed, pinned by
// pinner. Zero bytes give nil.
func Allocate(pinner *runtime.Pinner, size, align uintptr) unsafe.Pointer {
	if align > 8 {
		panic("wit runtime: alignment over 8 bytes")
	}
	if size == 0 {
		return nil
	}
	// Go's allocator aligns a []uint64 to 8 bytes.
	words := make([]uint64, (size+7)/8)
	memory := unsafe.Pointer(unsafe.SliceData(words))
	pinner.Pin(memory)
	return memory
}

// Unpin releases the memory of the current export's arguments: the bindings call it once
// they have turned the arguments into Go values (which keep what they still point to alive).
func Unpin() {
	argumentPins.Unpin()
}

// initialized is set once Go's runtime and this package are initialized.
var initialized bool

// reallocating is set while cabiRealloc allocates from Go's heap (see there).
var reallocating bool

func init() {
	initialized = true
}

// early is the memory handed out before Go's runtime can allocate (see cabiRealloc): static,
// so it exists from the first instruction, and never freed.
var early struct {
	arena [256 << 10]byte
	used  uintptr
}

// earlyAllocate bump-allocates from early; nil when it is used up.
func earlyAllocate(size, align uintptr) unsafe.Pointer {
	base := uintptr(unsafe.Pointer(&early.arena[0]))
	start := (base+early.used+align-1)&^(align-1) - base
	if start+size > uintptr(len(early.arena)) {
		return nil
	}
	early.used = start + size
	return unsafe.Pointer(&early.arena[start])
}

// pauseMonotonicClock makes the WASI preview-1 adapter answer the monotonic clock from a cached
// value instead of calling the host (wasmtime's adapter has it for this).
//
//go:wasmimport wasi_snapshot_preview1 adapter_monotonic_clock_set_paused
func pauseMonotonicClock(paused bool)

// cabiRealloc is the allocator the host calls to write an export's arguments, and the WASI
// adapter to allocate its own state.
//
//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uintptr) unsafe.Pointer {
	var memory unsafe.Pointer
	if initialized && !reallocating {
		// An allocation may start a garbage collection, which reads the monotonic clock: an
		// import call, which the component model forbids inside cabi_realloc.
		reallocating = true
		pauseMonotonicClock(true)
		memory = Allocate(&argumentPins, newSize, align)
		pauseMonotonicClock(false)
		reallocating = false
	} else {
		// The adapter allocates its state on its first call: while Go's runtime starts (before
		// Go code can allocate), or, in a module pre-initialized without the adapter (Wizer),
		// from the pauseMonotonicClock call just above.
		memory = earlyAllocate(newSize, align)
	}
	if oldSize > 0 && newSize > 0 {
		copy(unsafe.Slice((*byte)(memory), newSize), unsafe.Slice((*byte)(old), min(oldSize, newSize)))
	}
	return memory
}
