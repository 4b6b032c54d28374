// The guard plugin in Go. `wit-bindgen go` writes the bindings (module wit_component) beside
// this at build time (scripts/build-plugins.sh); they import go.bytecodealliance.org/pkg, which
// is this project's own ../go-wit.
module wit_component

go 1.25

require go.bytecodealliance.org/pkg v0.2.3

replace go.bytecodealliance.org/pkg => ../go-wit
