/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* The Scitags flow-label layout (RFC 6437 label, draft-cc-v6ops-wlcg-flow-label-marking), shared by
 * the BPF marker, flowd's user space and the NetFlow decoder. Plain C, no helpers: one
 * implementation.
 *
 *   bit 19 18 | 17 ............ 9 | 8 | 7 ........ 2 | 1 0
 *      entropy| experiment, 9 bits|ent| activity, 6  | entropy
 *             | bit-REVERSED      |   |              |
 */
#ifndef FLOWD_LABEL_H
#define FLOWD_LABEL_H

#define FLOWD_LABEL_SEMANTIC_MASK 0x3FEFCu
#define FLOWD_LABEL_ENTROPY_MASK 0xC0103u
#define FLOWD_LABEL_MASK 0xFFFFFu

/* exp bit 0 -> result bit 8, ..., exp bit 8 -> result bit 0 */
static inline unsigned int flowd_reverse9(unsigned int v) {
  unsigned int r = 0;
  int i;

  for (i = 0; i < 9; i++) r |= ((v >> i) & 1u) << (8 - i);
  return r;
}

static inline unsigned int flowd_make_label(unsigned int experiment, unsigned int activity,
                                            unsigned int entropy) {
  return (entropy & FLOWD_LABEL_ENTROPY_MASK) | (flowd_reverse9(experiment & 0x1FFu) << 9) |
         ((activity & 0x3Fu) << 2);
}

static inline unsigned int flowd_label_experiment(unsigned int label) {
  return flowd_reverse9((label >> 9) & 0x1FFu);
}

static inline unsigned int flowd_label_activity(unsigned int label) {
  return (label >> 2) & 0x3Fu;
}

#endif
