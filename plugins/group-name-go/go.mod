// An example before-callback in Go: a group's new name is tidied, capped, or refused. The
// bindings are generated beside this at build time (scripts/build-plugins.sh).
module wit_component

go 1.25

require go.bytecodealliance.org/pkg v0.2.3

replace go.bytecodealliance.org/pkg => ../go-wit
