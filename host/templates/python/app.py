"""{{name}}: a callback-host plugin for OpenIM's kick callback."""

from openim_helpers import go_on, info, refuse
from wit_world import exports
from wit_world.exports.kick_group_member import KickRequest
from wit_world.imports.types import Delivery, Response
{{openim_api_imports}}


class KickGroupMember(exports.KickGroupMember):
    def handle_kick(self, delivery: Delivery, request: KickRequest) -> Response:
        info("kick seen", group_id=request.group_id)
{{openim_api_call}}
        # Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
        if "root" in request.kicked_user_ids:
            return refuse(4001, "root cannot be kicked", delivery.operation_id)
        return go_on()
