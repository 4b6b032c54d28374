// {{name}}: a callback-host plugin for OpenIM's kick callback.
// kick_plugin.h is generated into build/ by `wit-bindgen c` (see build.sh).
#include <string.h>

#include "kick_plugin.h"
#define OPENIM_WORLD kick_plugin
#include "openim_helpers.h"

void exports_openim_callback_kick_group_member_handle_kick(
    exports_openim_callback_kick_group_member_delivery_t *delivery,
    exports_openim_callback_kick_group_member_kick_request_t *request,
    exports_openim_callback_kick_group_member_response_t *ret) {
  OPENIM_LOG(OPENIM_CALLBACK_LOG_LEVEL_INFO, "kick seen");
{{openim_api_call}}
  // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
  int refuse = 0;
  for (size_t i = 0; i < request->kicked_user_ids.len; i++) {
    kick_plugin_string_t *id = &request->kicked_user_ids.ptr[i];
    refuse |= id->len == 4 && memcmp(id->ptr, "root", 4) == 0;
  }
  if (refuse) {
    OPENIM_REFUSE(ret, 4001, "root cannot be kicked", "");
    // errDlt: the operationID (the answer owns its strings: copied).
    kick_plugin_string_free(&ret->err_dlt);
    kick_plugin_string_dup_n(&ret->err_dlt, (const char *)delivery->operation_id.ptr,
                             delivery->operation_id.len);
  } else {
    OPENIM_GO_ON(ret);
  }
  exports_openim_callback_kick_group_member_delivery_free(delivery);  // the arguments are ours
  exports_openim_callback_kick_group_member_kick_request_free(request);
}
