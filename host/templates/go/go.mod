// {{name}}: a callback-host plugin in Go. build.sh generates the bindings (module
// wit_component) into build/ and builds there; they import go.bytecodealliance.org/pkg, the
// runtime in ./go-wit (callback-host's own: the Go module proxy is not needed).
module wit_component

go 1.25

require go.bytecodealliance.org/pkg v0.2.3

replace go.bytecodealliance.org/pkg => ./go-wit
