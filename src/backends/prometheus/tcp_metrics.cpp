// SPDX-License-Identifier: Apache-2.0
#include "backends/prometheus/tcp_metrics.hpp"

#include <cstddef>
#include <string>

namespace flowd::prometheus_backend {

using netlink::TcpDetails;
namespace {

// Whether the kernel's tcp_info reached `field` (older kernels send a shorter struct).
#define FLOWD_HAS(d, field) ((d).info_len >= offsetof(tcp_info, field) + sizeof((d).info.field))
#define FLOWD_FIELD(fname, field, scale)                          \
  [](const TcpDetails& d) -> std::optional<double> {              \
    if (!d.info_len || !FLOWD_HAS(d, field)) return std::nullopt; \
    return static_cast<double>(d.info.field) * (scale);           \
  }
#define FLOWD_SKMEM(i)                               \
  [](const TcpDetails& d) -> std::optional<double> { \
    if (!d.has_skmem) return std::nullopt;           \
    return static_cast<double>(d.skmem[i]);          \
  }

constexpr double kUsToMs = 0.001;

const TcpMetricSpec kSpecs[] = {
    {"flow_tcp_rto", "Retransmission timeout (milliseconds)", false,
     FLOWD_FIELD(rto, tcpi_rto, kUsToMs)},
    {"flow_tcp_ato", "Delayed-ACK timeout (milliseconds)", false,
     FLOWD_FIELD(ato, tcpi_ato, kUsToMs)},
    {"flow_tcp_rtt", "Smoothed round-trip time (milliseconds)", false,
     FLOWD_FIELD(rtt, tcpi_rtt, kUsToMs)},
    {"flow_tcp_rtt_var", "Round-trip time variation (milliseconds)", false,
     FLOWD_FIELD(rtt_var, tcpi_rttvar, kUsToMs)},
    {"flow_tcp_minrtt", "Minimum round-trip time seen (milliseconds)", false,
     FLOWD_FIELD(minrtt, tcpi_min_rtt, kUsToMs)},
    {"flow_tcp_rcv_rtt", "Receiver's round-trip time estimate (milliseconds)", false,
     FLOWD_FIELD(rcv_rtt, tcpi_rcv_rtt, kUsToMs)},
    {"flow_tcp_mss", "Sender maximum segment size (bytes)", false,
     FLOWD_FIELD(mss, tcpi_snd_mss, 1)},
    {"flow_tcp_advmss", "Advertised maximum segment size (bytes)", false,
     FLOWD_FIELD(advmss, tcpi_advmss, 1)},
    {"flow_tcp_rcvmss", "Receiver maximum segment size estimate (bytes)", false,
     FLOWD_FIELD(rcvmss, tcpi_rcv_mss, 1)},
    {"flow_tcp_pmtu", "Path MTU (bytes)", false, FLOWD_FIELD(pmtu, tcpi_pmtu, 1)},
    {"flow_tcp_cwnd", "Congestion window (segments)", false, FLOWD_FIELD(cwnd, tcpi_snd_cwnd, 1)},
    {"flow_tcp_ssthresh", "Slow-start threshold (segments); absent while infinite", false,
     [](const TcpDetails& d) -> std::optional<double> {
       // ss prints ssthresh only once it is below TCP_INFINITE_SSTHRESH.
       if (!d.info_len || d.info.tcpi_snd_ssthresh >= 0x7fffffffu) return std::nullopt;
       return static_cast<double>(d.info.tcpi_snd_ssthresh);
     }},
    {"flow_tcp_rcv_space", "Receive buffer space the receiver autotunes to (bytes)", false,
     FLOWD_FIELD(rcv_space, tcpi_rcv_space, 1)},
    {"flow_tcp_rcv_ssthresh", "Receive window clamp (bytes)", false,
     FLOWD_FIELD(rcv_ssthresh, tcpi_rcv_ssthresh, 1)},
    {"flow_tcp_snd_wnd", "Peer's advertised receive window (bytes)", false,
     FLOWD_FIELD(snd_wnd, tcpi_snd_wnd, 1)},
    {"flow_tcp_unacked", "Segments sent and not yet acknowledged", false,
     FLOWD_FIELD(unacked, tcpi_unacked, 1)},
    {"flow_tcp_notsent", "Bytes queued and not yet sent", false,
     FLOWD_FIELD(notsent, tcpi_notsent_bytes, 1)},
    {"flow_tcp_pacing_rate", "Pacing rate (bits per second)", false,
     [](const TcpDetails& d) -> std::optional<double> {
       if (!d.info_len || d.info.tcpi_pacing_rate == ~0ull) return std::nullopt;  // no pacing
       return static_cast<double>(d.info.tcpi_pacing_rate) * 8;
     }},
    {"flow_tcp_delivery_rate", "Delivery rate (bits per second)", false,
     FLOWD_FIELD(delivery_rate, tcpi_delivery_rate, 8)},
    {"flow_tcp_delivered", "Segments delivered (including retransmissions)", false,
     FLOWD_FIELD(delivered, tcpi_delivered, 1)},
    {"flow_tcp_lastsnd", "Time since data was last sent (milliseconds)", false,
     FLOWD_FIELD(lastsnd, tcpi_last_data_sent, 1)},
    {"flow_tcp_lastrcv", "Time since data was last received (milliseconds)", false,
     FLOWD_FIELD(lastrcv, tcpi_last_data_recv, 1)},
    {"flow_tcp_lastack", "Time since an ACK was last received (milliseconds)", false,
     FLOWD_FIELD(lastack, tcpi_last_ack_recv, 1)},
    {"flow_tcp_busy", "Time busy sending data (milliseconds)", false,
     FLOWD_FIELD(busy, tcpi_busy_time, kUsToMs)},
    {"flow_tcp_rwnd_limited", "Time limited by the receive window (milliseconds)", false,
     FLOWD_FIELD(rwnd_limited, tcpi_rwnd_limited, kUsToMs)},
    {"flow_tcp_sndbuf_limited", "Time limited by the send buffer (milliseconds)", false,
     FLOWD_FIELD(sndbuf_limited, tcpi_sndbuf_limited, kUsToMs)},
    {"flow_tcp_bytes_sent_total", "Bytes sent, retransmissions included", true,
     FLOWD_FIELD(bytes_sent, tcpi_bytes_sent, 1)},
    {"flow_tcp_bytes_acked_total", "Bytes acknowledged by the peer", true,
     FLOWD_FIELD(bytes_acked, tcpi_bytes_acked, 1)},
    {"flow_tcp_bytes_received_total", "Bytes received", true,
     FLOWD_FIELD(bytes_received, tcpi_bytes_received, 1)},
    {"flow_tcp_bytes_retrans_total", "Bytes retransmitted", true,
     FLOWD_FIELD(bytes_retrans, tcpi_bytes_retrans, 1)},
    {"flow_tcp_segs_out_total", "Segments sent", true, FLOWD_FIELD(segs_out, tcpi_segs_out, 1)},
    {"flow_tcp_segs_in_total", "Segments received", true, FLOWD_FIELD(segs_in, tcpi_segs_in, 1)},
    {"flow_tcp_data_segs_out_total", "Segments with data sent", true,
     FLOWD_FIELD(data_segs_out, tcpi_data_segs_out, 1)},
    {"flow_tcp_data_segs_in_total", "Segments with data received", true,
     FLOWD_FIELD(data_segs_in, tcpi_data_segs_in, 1)},
    {"flow_tcp_retrans_total", "Segments retransmitted", true,
     FLOWD_FIELD(retrans, tcpi_total_retrans, 1)},
    {"flow_tcp_skmem_rmem_alloc", "Receive queue memory (bytes)", false, FLOWD_SKMEM(0)},
    {"flow_tcp_skmem_rcv_buf", "Receive buffer size (bytes)", false, FLOWD_SKMEM(1)},
    {"flow_tcp_skmem_wmem_allow", "Send queue memory (bytes; the original's name)", false,
     FLOWD_SKMEM(2)},
    {"flow_tcp_skmem_snd_buf", "Send buffer size (bytes)", false, FLOWD_SKMEM(3)},
    {"flow_tcp_skmem_fwd_alloc", "Memory allocated ahead of use (bytes)", false, FLOWD_SKMEM(4)},
    {"flow_tcp_skmem_wmem_queued", "Send memory queued (bytes)", false, FLOWD_SKMEM(5)},
    {"flow_tcp_skmem_opt_mem", "Socket option memory (bytes)", false, FLOWD_SKMEM(6)},
    {"flow_tcp_skmem_back_log", "Backlog queue length (bytes)", false, FLOWD_SKMEM(7)},
    {"flow_tcp_skmem_sock_drop", "Packets dropped before reaching the socket", false,
     FLOWD_SKMEM(8)},
};

#undef FLOWD_SKMEM
#undef FLOWD_FIELD
#undef FLOWD_HAS

}  // namespace

std::span<const TcpMetricSpec> tcp_metric_specs() {
  return kSpecs;
}

std::string tcp_options_text(const TcpDetails& d) {
  std::string out;
  auto add = [&](const std::string& w) { out += (out.empty() ? "" : " ") + w; };
  if (d.info_len) {
    if (d.info.tcpi_options & TCPI_OPT_TIMESTAMPS) add("ts");
    if (d.info.tcpi_options & TCPI_OPT_SACK) add("sack");
    if (d.info.tcpi_options & TCPI_OPT_ECN) add("ecn");
    if (d.info.tcpi_options & TCPI_OPT_ECN_SEEN) add("ecnseen");
    if (d.info.tcpi_options & TCPI_OPT_SYN_DATA) add("fastopen");
  }
  if (d.congestion[0]) add(d.congestion);
  if (d.info_len && (d.info.tcpi_options & TCPI_OPT_WSCALE))
    add("wscale:" + std::to_string(d.info.tcpi_snd_wscale) + "," +
        std::to_string(d.info.tcpi_rcv_wscale));
  return out;
}

}  // namespace flowd::prometheus_backend
