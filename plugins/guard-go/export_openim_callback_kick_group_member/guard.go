// Package export_openim_callback_kick_group_member is the guard plugin in Go: it refuses a kick
// when it includes a protected user. Same policy as the Rust guard (plugins/guard): errCode
// 10001, each protected id once, in the order kicked, in errDlt.
//
// The bindings it uses (wit_component/openim_callback_*) are generated at build time by
// `wit-bindgen go` from wit/, and wit_component/openim_helpers is copied beside them from
// plugins/openim-helpers/go (see scripts/build-plugins.sh).
package export_openim_callback_kick_group_member

import (
	"slices"
	"strings"

	"wit_component/openim_callback_kick_group_member"
	"wit_component/openim_callback_types"
	"wit_component/openim_helpers"
)

// errProtected is the errCode of a refusal.
const errProtected = 10001

// protectedUsers may not be kicked.
var protectedUsers = []string{"admin", "owner-bot", "security-officer"}

// HandleKick decides on OpenIM's callbackAfterKickGroupCommand.
func HandleKick(delivery openim_callback_types.Delivery, request openim_callback_kick_group_member.KickRequest) openim_callback_types.Response {
	var blocked []string
	for _, user := range request.KickedUserIds {
		if slices.Contains(protectedUsers, user) && !slices.Contains(blocked, user) {
			blocked = append(blocked, user)
		}
	}
	if len(blocked) == 0 {
		return openim_helpers.GoOn()
	}
	list := strings.Join(blocked, ",")
	openim_helpers.Warn("refusing kick of protected users",
		"group_id", request.GroupId, "protected", list, "operation_id", delivery.OperationId)
	return openim_helpers.Refuse(errProtected, "kicking protected users is not allowed", "protected users: "+list)
}
