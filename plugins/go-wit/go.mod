// The Go runtime the code of `wit-bindgen go` imports, written for this project: the generated
// code imports go.bytecodealliance.org/pkg (published only on the Go module proxy, which these
// machines cannot reach), and each Go plugin points that path here with a `replace` directive.
// It covers what this project's WIT needs: memory handed to the host, options, results, tuples
// (no resources, futures or streams).
module go.bytecodealliance.org/pkg

go 1.25
