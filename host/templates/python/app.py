"""{{name}}: a callback-host plugin for OpenIM's kick callback."""

from wit_world import exports
from wit_world.exports.kick_group_member import KickRequest
from wit_world.imports import log
from wit_world.imports.types import Delivery, Response


class KickGroupMember(exports.KickGroupMember):
    def handle_kick(self, delivery: Delivery, request: KickRequest) -> Response:
        log.log(log.Level.INFO, "kick seen", [("group_id", request.group_id)])
        # Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
        refuse = "root" in request.kicked_user_ids
        return Response(
            action_code=0,
            err_code=4001 if refuse else 0,
            err_msg="root cannot be kicked" if refuse else "",
            err_dlt=delivery.operation_id if refuse else "",
            next_code=1 if refuse else 0,
        )
