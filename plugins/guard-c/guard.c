// The guard plugin in C: refuses a kick when it includes a protected user.
// Same policy as the Rust guard (plugins/guard): errCode 10001, the protected ids in errDlt.
// kick_plugin.h and kick_plugin.c are generated at build time by `wit-bindgen c` from
// wit/callback.wit (see scripts/build-plugins.sh).
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kick_plugin.h"
#define OPENIM_WORLD kick_plugin
#include "openim_helpers.h"

#define ERR_PROTECTED 10001

static const char *const PROTECTED_USERS[] = {"admin", "owner-bot", "security-officer"};

static bool equals(const kick_plugin_string_t *s, const char *literal) {
  size_t len = strlen(literal);
  return s->len == len && memcmp(s->ptr, literal, len) == 0;
}

// The protected id `user` is, or NULL.
static const char *protected_id(const kick_plugin_string_t *user) {
  for (size_t i = 0; i < sizeof PROTECTED_USERS / sizeof PROTECTED_USERS[0]; i++) {
    if (equals(user, PROTECTED_USERS[i])) return PROTECTED_USERS[i];
  }
  return NULL;
}

static void set_field(kick_plugin_tuple2_string_string_t *field, const char *key,
                      const uint8_t *value, size_t len) {
  kick_plugin_string_set(&field->f0, key);
  field->f1.ptr = (uint8_t *)value;
  field->f1.len = len;
}

void exports_openim_callback_kick_group_member_handle_kick(
    exports_openim_callback_kick_group_member_delivery_t *delivery,
    exports_openim_callback_kick_group_member_kick_request_t *request,
    exports_openim_callback_kick_group_member_response_t *ret) {
  // Protected ids kicked, each once, in the order kicked: "a,b,c".
  const char *blocked[sizeof PROTECTED_USERS / sizeof PROTECTED_USERS[0]];
  size_t blocked_count = 0;
  size_t list_len = 0;
  for (size_t i = 0; i < request->kicked_user_ids.len; i++) {
    const char *id = protected_id(&request->kicked_user_ids.ptr[i]);
    bool seen = false;
    for (size_t j = 0; id && j < blocked_count; j++) seen |= blocked[j] == id;
    if (id && !seen) {
      list_len += strlen(id) + (blocked_count ? 1 : 0);
      blocked[blocked_count++] = id;
    }
  }

  OPENIM_GO_ON(ret);
  if (blocked_count > 0) {
    static const char prefix[] = "protected users: ";
    char *dlt = malloc(sizeof prefix + list_len);
    if (!dlt) abort();
    strcpy(dlt, prefix);
    for (size_t j = 0; j < blocked_count; j++) {
      if (j) strcat(dlt, ",");
      strcat(dlt, blocked[j]);
    }
    const char *list = dlt + sizeof prefix - 1;

    kick_plugin_tuple2_string_string_t fields[3];
    set_field(&fields[0], "group_id", request->group_id.ptr, request->group_id.len);
    set_field(&fields[1], "protected", (const uint8_t *)list, strlen(list));
    set_field(&fields[2], "operation_id", delivery->operation_id.ptr, delivery->operation_id.len);
    kick_plugin_list_tuple2_string_string_t field_list = {fields, 3};
    kick_plugin_string_t message;
    kick_plugin_string_set(&message, "refusing kick of protected users");
    openim_callback_log_log(OPENIM_CALLBACK_LOG_LEVEL_WARN, &message, &field_list);

    ret->action_code = 0;
    ret->err_code = ERR_PROTECTED;
    kick_plugin_string_dup(&ret->err_msg, "kicking protected users is not allowed");
    // The response owns its strings (the bindings free them after the host read them).
    ret->err_dlt.ptr = (uint8_t *)dlt;
    ret->err_dlt.len = strlen(dlt);
    ret->next_code = 1;
  }
  exports_openim_callback_kick_group_member_delivery_free(delivery);
  exports_openim_callback_kick_group_member_kick_request_free(request);
}
