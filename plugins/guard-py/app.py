"""The guard plugin in Python: refuses a kick when it includes a protected user.

Same policy as the Rust guard (plugins/guard): errCode 10001, the protected ids in errDlt.
Built with componentize-py (see scripts/build-plugins.sh); the bindings in `wit_world` are
generated at build time from wit/callback.wit.
"""

from wit_world import exports
from wit_world.exports.kick_group_member import KickRequest
from wit_world.imports import log
from wit_world.imports.types import Delivery, Response

PROTECTED_USERS = frozenset({"admin", "owner-bot", "security-officer"})
ERR_PROTECTED = 10001


class KickGroupMember(exports.KickGroupMember):
    def handle_kick(self, delivery: Delivery, request: KickRequest) -> Response:
        blocked: list[str] = []
        for user in request.kicked_user_ids:
            if user in PROTECTED_USERS and user not in blocked:
                blocked.append(user)
        if not blocked:
            return Response(action_code=0, err_code=0, err_msg="", err_dlt="", next_code=0)
        listed = ",".join(blocked)
        log.log(
            log.Level.WARN,
            "refusing kick of protected users",
            [
                ("group_id", request.group_id),
                ("protected", listed),
                ("operation_id", delivery.operation_id),
            ],
        )
        return Response(
            action_code=0,
            err_code=ERR_PROTECTED,
            err_msg="kicking protected users is not allowed",
            err_dlt=f"protected users: {listed}",
            next_code=1,
        )
