// {{name}}: a callback-host plugin for OpenIM's `{{command}}`.
// {{world_snake}}.h is generated into build/ by `wit-bindgen c` (see build.sh).
#include <string.h>

#include "{{world_snake}}.h"

void exports_openim_callback_{{module}}_handle(
    exports_openim_callback_{{module}}_delivery_t *delivery,
    exports_openim_callback_{{module}}_{{request_snake}}_t *request,
    exports_openim_callback_{{module}}_{{return_snake}}_t *ret) {
  {{world_snake}}_string_t message;
  {{world_snake}}_string_set(&message, "callback seen");
  {{world_snake}}_list_tuple2_string_string_t no_fields = {NULL, 0};
  openim_callback_log_log(OPENIM_CALLBACK_LOG_LEVEL_INFO, &message, &no_fields);
  // Go on (actionCode 0, nextCode 0), every change `none`. To refuse: set next_code = 1 and err_code.
  memset(ret, 0, sizeof *ret);
  exports_openim_callback_{{module}}_delivery_free(delivery);  // the arguments are ours
  exports_openim_callback_{{module}}_{{request_snake}}_free(request);
}
