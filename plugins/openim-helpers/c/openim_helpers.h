// Helpers for callback-host plugins in C: the answers every plugin writes and a log line.
// wit-bindgen's C names carry the world's name, so say which world before including it:
//
//   #include "kick_plugin.h"
//   #define OPENIM_WORLD kick_plugin
//   #include "openim_helpers.h"
//
//   OPENIM_GO_ON(ret);                                   // a response: go on
//   OPENIM_REFUSE(ret, 4001, "root cannot be kicked", "");  // a refusal (strings are copied)
//   OPENIM_LOG(OPENIM_CALLBACK_LOG_LEVEL_INFO, "kick seen");
//
// For a command whose answer carries changes, OPENIM_GO_ON(ret) is "go on, no changes" (every
// change `none`), and OPENIM_REFUSE(&ret->response, ...) refuses. Plugins written without this
// header keep working.
#ifndef OPENIM_HELPERS_H
#define OPENIM_HELPERS_H

#include <string.h>

#ifndef OPENIM_WORLD
#error "define OPENIM_WORLD (your world's name in snake case, e.g. kick_plugin) before including openim_helpers.h"
#endif

#define OPENIM_CAT_(a, b) a##b
#define OPENIM_CAT(a, b) OPENIM_CAT_(a, b)
/// A name of the world's bindings: OPENIM_NAME(_string_dup) is kick_plugin_string_dup.
#define OPENIM_NAME(suffix) OPENIM_CAT(OPENIM_WORLD, suffix)

/// "Go on": every field zero, every change `none`.
#define OPENIM_GO_ON(ret) memset((ret), 0, sizeof *(ret))

/// A refusal: OpenIM hands err_code, err_msg and err_dlt (C strings, copied) to its caller.
#define OPENIM_REFUSE(ret, code, msg, dlt)                 \
  do {                                                     \
    memset((ret), 0, sizeof *(ret));                       \
    (ret)->err_code = (code);                              \
    OPENIM_NAME(_string_dup)(&(ret)->err_msg, (msg));      \
    OPENIM_NAME(_string_dup)(&(ret)->err_dlt, (dlt));      \
    (ret)->next_code = 1;                                  \
  } while (0)

/// A line in the host's log, without fields.
#define OPENIM_LOG(level, text)                                  \
  do {                                                           \
    OPENIM_NAME(_string_t) openim_message_;                      \
    OPENIM_NAME(_string_set)(&openim_message_, (text));          \
    OPENIM_NAME(_list_tuple2_string_string_t) openim_fields_ = {NULL, 0}; \
    openim_callback_log_log((level), &openim_message_, &openim_fields_); \
  } while (0)

#endif
