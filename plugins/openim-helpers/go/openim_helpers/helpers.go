// Package openim_helpers holds the few lines every callback-host plugin in Go writes: the
// answers and a log line with fields. (No JSON here: encoding/json would add a megabyte and its
// start-up to every plugin that imports the package.) It lives in the plugin's module
// (wit_component) beside the bindings `wit-bindgen go` generates, which it uses: the build copies
// it there (scripts/build-plugins.sh; `callback-host new go` projects hold a copy). Plugins
// written without it keep working.
package openim_helpers

import (
	"wit_component/openim_callback_log"
	"wit_component/openim_callback_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// GoOn lets the operation proceed.
func GoOn() openim_callback_types.Response {
	return openim_callback_types.Response{}
}

// Refuse refuses it: OpenIM hands errCode, errMsg and errDlt to its caller (only actionCode 0
// with nextCode 1 refuses).
func Refuse(errCode int32, errMsg, errDlt string) openim_callback_types.Response {
	return openim_callback_types.Response{ErrCode: errCode, ErrMsg: errMsg, ErrDlt: errDlt, NextCode: 1}
}

// Info writes a line to the host's log; fields are key, value, key, value...
func Info(message string, fields ...string) { line(openim_callback_log.LevelInfo, message, fields) }

// Warn is Info at the warning level.
func Warn(message string, fields ...string) { line(openim_callback_log.LevelWarn, message, fields) }

func line(level openim_callback_log.Level, message string, fields []string) {
	pairs := make([]witTypes.Tuple2[string, string], 0, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		pairs = append(pairs, witTypes.Tuple2[string, string]{F0: fields[i], F1: fields[i+1]})
	}
	openim_callback_log.Log(level, message, pairs)
}
