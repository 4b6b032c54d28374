"""{{name}}: a callback-host plugin for OpenIM's `{{command}}`."""

from openim_helpers import go_on, info
from wit_world import exports
from wit_world.imports.types import Delivery
{{openim_api_imports}}
{{python_imports}}

class {{class}}(exports.{{class}}):
    def handle(self, delivery: Delivery, request):
        info("callback seen", request=repr(request), operation_id=delivery.operation_id)
{{openim_api_call}}
        # Go on. To refuse: openim_helpers.refuse(err_code, err_msg, err_dlt).
        response = go_on()
        return {{python_answer}}
