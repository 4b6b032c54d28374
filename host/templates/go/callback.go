// Package export_openim_callback_{{module}} is {{name}}, a callback-host plugin for OpenIM's
// `{{command}}`. The packages it imports from wit_component are generated into build/ by
// `wit-bindgen go` (see build.sh).
package export_openim_callback_{{module}}

import (
{{go_imports}}
)

// Handle answers one callback.
func Handle(delivery openim_callback_types.Delivery, request {{go_request}}) {{go_return_type}} {
	openim_callback_log.Log(openim_callback_log.LevelInfo, "callback seen", nil)
	// Go on (ActionCode 0, NextCode 0). To refuse: NextCode 1 with your ErrCode and ErrMsg.
	response := openim_callback_types.Response{}
	return {{go_answer}}
}
