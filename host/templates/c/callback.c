// {{name}}: a callback-host plugin for OpenIM's `{{command}}`.
// {{world_snake}}.h is generated into build/ by `wit-bindgen c` (see build.sh).
#include <string.h>

#include "{{world_snake}}.h"
#define OPENIM_WORLD {{world_snake}}
#include "openim_helpers.h"

void exports_openim_callback_{{module}}_handle(
    exports_openim_callback_{{module}}_delivery_t *delivery,
    exports_openim_callback_{{module}}_{{request_snake}}_t *request,
    exports_openim_callback_{{module}}_{{return_snake}}_t *ret) {
  OPENIM_LOG(OPENIM_CALLBACK_LOG_LEVEL_INFO, "callback seen");
{{openim_api_call}}
  // Go on, every change `none`. To refuse: OPENIM_REFUSE(ret, code, "message", "detail") (for
  // an answer with changes: OPENIM_REFUSE(&ret->response, ...)).
  OPENIM_GO_ON(ret);
  exports_openim_callback_{{module}}_delivery_free(delivery);  // the arguments are ours
  exports_openim_callback_{{module}}_{{request_snake}}_free(request);
}
