// {{name}}: a callback-host plugin for OpenIM's kick callback.
// kick_plugin.h is generated into build/ by `wit-bindgen c` (see build.sh).
#include <string.h>

#include "kick_plugin.h"

void exports_openim_callback_kick_group_member_handle_kick(
    exports_openim_callback_kick_group_member_delivery_t *delivery,
    exports_openim_callback_kick_group_member_kick_request_t *request,
    exports_openim_callback_kick_group_member_response_t *ret) {
  // Refuse (actionCode 0, nextCode 1) when "root" is kicked; let everything else go on.
  int refuse = 0;
  for (size_t i = 0; i < request->kicked_user_ids.len; i++) {
    kick_plugin_string_t *id = &request->kicked_user_ids.ptr[i];
    refuse |= id->len == 4 && memcmp(id->ptr, "root", 4) == 0;
  }
  kick_plugin_string_t message;
  kick_plugin_string_set(&message, "kick seen");
  kick_plugin_list_tuple2_string_string_t no_fields = {NULL, 0};
  openim_callback_log_log(OPENIM_CALLBACK_LOG_LEVEL_INFO, &message, &no_fields);
  memset(ret, 0, sizeof *ret);
  if (refuse) {
    ret->err_code = 4001;
    kick_plugin_string_dup(&ret->err_msg, "root cannot be kicked");  // the answer owns its strings
    kick_plugin_string_dup_n(&ret->err_dlt, (const char *)delivery->operation_id.ptr,
                             delivery->operation_id.len);
    ret->next_code = 1;
  }
  exports_openim_callback_kick_group_member_delivery_free(delivery);  // the arguments are ours
  exports_openim_callback_kick_group_member_kick_request_free(request);
}
