// Package export_openim_callback_kick_group_member is {{name}}, a callback-host plugin for
// OpenIM's `{{command}}`: it refuses kicking "root". The packages it imports from
// wit_component are generated into build/ by `wit-bindgen go` (see build.sh).
package export_openim_callback_kick_group_member

import (
	"slices"

	"wit_component/openim_callback_kick_group_member"
	"wit_component/openim_callback_types"
	"wit_component/openim_helpers"
{{openim_api_imports}}
)

// HandleKick answers one kick.
func HandleKick(delivery openim_callback_types.Delivery, request openim_callback_kick_group_member.KickRequest) openim_callback_types.Response {
	openim_helpers.Info("kick seen", "group_id", request.GroupId)
{{openim_api_call}}
	if slices.Contains(request.KickedUserIds, "root") {
		return openim_helpers.Refuse(4001, "root cannot be kicked", delivery.OperationId)
	}
	return openim_helpers.GoOn()
}
