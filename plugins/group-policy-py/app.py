"""Group policy for callbackBeforeCreateGroupCommand, in Python.

- A group whose name contains a banned word is refused (errCode 30001, the word in errDlt).
- Every other new group is forced to need verification for all joins (needVerification = 1,
  OpenIM's "AllNeedVerification"), whatever its creator asked for.

The answer's `changes` say what OpenIM should change; `None` leaves a field as the request has it.
"""

from openim_helpers import go_on, info, no_changes, refuse, warn
from wit_world import exports
from wit_world.exports.before_create_group import Answer, Changes, Request
from wit_world.imports.types import Delivery

BANNED_WORDS = ("casino", "crypto-pump")
ALL_NEED_VERIFICATION = 1


class BeforeCreateGroup(exports.BeforeCreateGroup):
    def handle(self, delivery: Delivery, request: Request) -> Answer:
        group = request.group_info
        if group is None:
            return Answer(response=go_on(), changes=no_changes(Changes))
        name = group.group_name.lower()
        for word in BANNED_WORDS:
            if word in name:
                warn("group refused", group_name=group.group_name, word=word)
                return Answer(
                    response=refuse(30001, "this group name is not allowed", f"banned word: {word}"),
                    changes=no_changes(Changes))
        if group.need_verification == ALL_NEED_VERIFICATION:
            return Answer(response=go_on(), changes=no_changes(Changes))
        info("forcing verification", group_id=group.group_id)
        return Answer(response=go_on(), changes=no_changes(Changes, need_verification=ALL_NEED_VERIFICATION))
