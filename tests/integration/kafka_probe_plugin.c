/* SPDX-License-Identifier: Apache-2.0 */
/* A librdkafka plugin that only says it was loaded: its constructor creates the file named by
 * FLOWD_PROBE_MARK. kafka_test.cpp sets it as librdkafka.plugin.library.paths and checks that
 * `flowd --check-config` never loads it (loading a plugin runs its code). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void flowd_probe_loaded(void) {
  const char* mark = getenv("FLOWD_PROBE_MARK");
  if (mark) {
    FILE* f = fopen(mark, "w");
    if (f) fclose(f);
  }
}
