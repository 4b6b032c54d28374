"""Group policy for callbackBeforeCreateGroupCommand, in Python.

- A group whose name contains a banned word is refused (errCode 30001, the word in errDlt).
- Every other new group is forced to need verification for all joins (needVerification = 1,
  OpenIM's "AllNeedVerification"), whatever its creator asked for.

The answer's `changes` say what OpenIM should change; `None` leaves a field as the request has it.
"""

from wit_world import exports
from wit_world.exports.before_create_group import Answer, Changes, Request
from wit_world.imports import log
from wit_world.imports.types import Delivery, Response

BANNED_WORDS = ("casino", "crypto-pump")
ALL_NEED_VERIFICATION = 1


def go_on() -> Response:
    return Response(action_code=0, err_code=0, err_msg="", err_dlt="", next_code=0)


def no_changes(**set_fields) -> Changes:
    fields = dict(group_id=None, group_name=None, notification=None, introduction=None,
                  face_url=None, owner_user_id=None, ex=None, status=None, creator_user_id=None,
                  group_type=None, need_verification=None, look_member_info=None)
    fields.update(set_fields)
    return Changes(**fields)


class BeforeCreateGroup(exports.BeforeCreateGroup):
    def handle(self, delivery: Delivery, request: Request) -> Answer:
        group = request.group_info
        if group is None:
            return Answer(response=go_on(), changes=no_changes())
        name = group.group_name.lower()
        for word in BANNED_WORDS:
            if word in name:
                log.log(log.Level.WARN, "group refused", [("group_name", group.group_name), ("word", word)])
                return Answer(
                    response=Response(action_code=0, err_code=30001, err_msg="this group name is not allowed",
                                      err_dlt=f"banned word: {word}", next_code=1),
                    changes=no_changes())
        if group.need_verification == ALL_NEED_VERIFICATION:
            return Answer(response=go_on(), changes=no_changes())
        log.log(log.Level.INFO, "forcing verification", [("group_id", group.group_id)])
        return Answer(response=go_on(), changes=no_changes(need_verification=ALL_NEED_VERIFICATION))
