"""{{name}}: a callback-host plugin for OpenIM's `{{command}}`."""

from wit_world import exports
from wit_world.imports import log
from wit_world.imports.types import Delivery, Response
{{python_imports}}

class {{class}}(exports.{{class}}):
    def handle(self, delivery: Delivery, request):
        log.log(log.Level.INFO, "callback seen", [("request", repr(request))])
        # Go on (action_code 0, next_code 0). To refuse: next_code=1 with your err_code and err_msg.
        response = Response(action_code=0, err_code=0, err_msg="", err_dlt=delivery.operation_id, next_code=0)
        return {{python_answer}}
