"""The guard plugin in Python: refuses a kick when it includes a protected user.

Same policy as the Rust guard (plugins/guard): errCode 10001, the protected ids in errDlt.
Built with componentize-py (see scripts/build-plugins.sh); the bindings in `wit_world` are
generated at build time from wit/callback.wit, and `openim_helpers` is
plugins/openim-helpers/python.
"""

from openim_helpers import go_on, refuse, warn
from wit_world import exports
from wit_world.exports.kick_group_member import KickRequest
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
            return go_on()
        listed = ",".join(blocked)
        warn("refusing kick of protected users", group_id=request.group_id, protected=listed,
             operation_id=delivery.operation_id)
        return refuse(ERR_PROTECTED, "kicking protected users is not allowed", f"protected users: {listed}")


# Warm-up, run once at build time: componentize-py snapshots the interpreter after this module
# has run, so every fresh instance starts with this call's code paths already taken (CPython's
# adaptive interpreter specializes bytecode, fills caches and interns strings on first use; done
# here, a request no longer pays for it). It takes the go-on path, which calls no host import.
KickGroupMember().handle_kick(
    Delivery(operation_id="warm-up", command="callbackAfterKickGroupCommand", time_left_ms=0, chain_position=0),
    KickRequest(callback_command="callbackAfterKickGroupCommand", group_id="warm-up",
                kicked_user_ids=["nobody"], reason=""),
)
