// Package export_openim_callback_{{module}} is {{name}}, a callback-host plugin for OpenIM's
// `{{command}}`. The packages it imports from wit_component are generated into build/ by
// `wit-bindgen go` (see build.sh), but openim_helpers, which is this project's own.
package export_openim_callback_{{module}}

import (
{{go_imports}}
{{openim_api_imports}}
)

// Handle answers one callback.
func Handle(delivery openim_callback_types.Delivery, request {{go_request}}) {{go_return_type}} {
	openim_helpers.Info("callback seen", "operation_id", delivery.OperationId)
{{openim_api_call}}
	// Go on. To refuse: openim_helpers.Refuse(errCode, errMsg, errDlt).
	response := openim_helpers.GoOn()
	return {{go_answer}}
}
