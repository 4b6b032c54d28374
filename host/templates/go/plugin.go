// Package export_openim_callback_kick_group_member is {{name}}, a callback-host plugin for
// OpenIM's `{{command}}`: it refuses kicking "root". The packages it imports from
// wit_component are generated into build/ by `wit-bindgen go` (see build.sh).
package export_openim_callback_kick_group_member

import (
	"slices"

	"wit_component/openim_callback_kick_group_member"
	"wit_component/openim_callback_log"
	"wit_component/openim_callback_types"
)

// HandleKick answers one kick.
func HandleKick(delivery openim_callback_types.Delivery, request openim_callback_kick_group_member.KickRequest) openim_callback_types.Response {
	openim_callback_log.Log(openim_callback_log.LevelInfo, "kick seen", nil)
	if slices.Contains(request.KickedUserIds, "root") {
		return openim_callback_types.Response{
			ErrCode:  4001,
			ErrMsg:   "root cannot be kicked",
			ErrDlt:   delivery.OperationId,
			NextCode: 1,
		}
	}
	return openim_callback_types.Response{}
}
