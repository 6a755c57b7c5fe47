// SPDX-License-Identifier: Apache-2.0
// ebpf: writes the Scitags tag into the IPv6 flow label of a flow's outgoing packets, with a tc
// (clsact egress, direct-action) BPF program (bpf/flowd_marker.bpf.c).
#pragma once

#include "flowd/component.hpp"

namespace flowd::ebpf {
const BackendInfo& backend_info();
}
