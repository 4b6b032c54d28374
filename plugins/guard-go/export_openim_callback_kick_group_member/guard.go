// Package export_openim_callback_kick_group_member is the guard plugin in Go: it refuses a kick
// when it includes a protected user. Same policy as the Rust guard (plugins/guard): errCode
// 10001, each protected id once, in the order kicked, in errDlt.
//
// The bindings it uses (wit_component/openim_callback_*) are generated at build time by
// `wit-bindgen go` from wit/ (see scripts/build-plugins.sh).
package export_openim_callback_kick_group_member

import (
	"slices"
	"strings"

	"wit_component/openim_callback_kick_group_member"
	"wit_component/openim_callback_log"
	"wit_component/openim_callback_types"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
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
		return openim_callback_types.Response{}
	}
	list := strings.Join(blocked, ",")
	openim_callback_log.Log(openim_callback_log.LevelWarn, "refusing kick of protected users", []witTypes.Tuple2[string, string]{
		{F0: "group_id", F1: request.GroupId},
		{F0: "protected", F1: list},
		{F0: "operation_id", F1: delivery.OperationId},
	})
	return openim_callback_types.Response{
		ActionCode: 0,
		ErrCode:    errProtected,
		ErrMsg:     "kicking protected users is not allowed",
		ErrDlt:     "protected users: " + list,
		NextCode:   1,
	}
}
