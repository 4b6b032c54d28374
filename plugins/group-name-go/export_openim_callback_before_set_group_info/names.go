// Package export_openim_callback_before_set_group_info decides on OpenIM's
// callbackBeforeSetGroupInfoCommand (a group's info is about to change): the new name
//   - is refused when it passes for staff ("official", "admin", "support" as a word, any case):
//     errCode 20010, the word in errDlt;
//   - is tidied otherwise: spaces trimmed and runs of white space made one space, then cut to
//     32 characters; when that changes it, the answer carries the new name and OpenIM saves that.
//
// An empty name means the name is not being changed; it is left alone.
package export_openim_callback_before_set_group_info

import (
	"strings"

	"wit_component/openim_callback_before_set_group_info"
	"wit_component/openim_callback_types"
	"wit_component/openim_helpers"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
)

// errStaffName is the errCode of a refused name.
const errStaffName = 20010

// maxNameRunes is the longest name kept, in characters.
const maxNameRunes = 32

// staffWords may not be a word of a group's name.
var staffWords = []string{"official", "admin", "support"}

// Handle answers one callbackBeforeSetGroupInfoCommand.
func Handle(delivery openim_callback_types.Delivery, request openim_callback_before_set_group_info.Request) openim_callback_before_set_group_info.Answer {
	answer := openim_callback_before_set_group_info.Answer{
		Changes: openim_callback_before_set_group_info.Changes{
			GroupName:         witTypes.None[string](),
			FaceUrl:           witTypes.None[string](),
			Introduction:      witTypes.None[string](),
			Ex:                witTypes.None[string](),
			NeedVerification:  witTypes.None[int32](),
			LookMemberInfo:    witTypes.None[int32](),
			ApplyMemberFriend: witTypes.None[int32](),
		},
	}
	if request.GroupName == "" {
		return answer
	}
	if word := staffWord(request.GroupName); word != "" {
		openim_helpers.Info("group name refused",
			"group_id", request.GroupId, "word", word, "operation_id", delivery.OperationId)
		answer.Response = openim_helpers.Refuse(errStaffName, "group names cannot pass for staff", "reserved word: "+word)
		return answer
	}
	if tidy := tidyName(request.GroupName); tidy != request.GroupName {
		answer.Changes.GroupName = witTypes.Some(tidy)
	}
	return answer
}

// staffWord is the first word of name that is a staff word (lower-cased), or "".
func staffWord(name string) string {
	for _, word := range strings.FieldsFunc(strings.ToLower(name), notLetterOrDigit) {
		for _, staff := range staffWords {
			if word == staff {
				return staff
			}
		}
	}
	return ""
}

func notLetterOrDigit(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 0x7f)
}

// tidyName trims name, makes each run of white space one space, and keeps 32 characters.
func tidyName(name string) string {
	tidy := strings.Join(strings.Fields(name), " ")
	if runes := []rune(tidy); len(runes) > maxNameRunes {
		tidy = strings.TrimRight(string(runes[:maxNameRunes]), " ")
	}
	return tidy
}
