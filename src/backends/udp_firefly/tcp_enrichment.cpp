// SPDX-License-Identifier: Apache-2.0
#include "backends/udp_firefly/tcp_enrichment.hpp"

#include <fmt/format.h>

namespace flowd::udp_firefly {

std::string netlink_json(const netlink::SockEntry& e, const netlink::TcpDetails& d) {
  fmt::memory_buffer out;
  auto it = std::back_inserter(out);
  fmt::format_to(
      it,
      R"({{"src": "{}", "dst": "{}", "src_port": {}, "dst_port": {}, "inode": {}, "iface_idx": {}, )"
      R"("retrans": {}, )",
      e.local.to_string(), e.remote.to_string(), e.local_port, e.remote_port, e.inode, e.ifindex,
      e.retrans);
  if (d.has_meminfo)
    fmt::format_to(it, R"("meminfo": {{"r": {}, "w": {}, "f": {}, "t": {}}}, )", d.meminfo[0],
                   d.meminfo[1], d.meminfo[2], d.meminfo[3]);
  // Congestion control names are kernel identifiers ([a-z0-9_]), safe inside a JSON string.
  fmt::format_to(it, R"("cong_algo": "{}")", d.congestion);
  if (d.info_len) {
    const tcp_info& i = d.info;
    auto ms = [](std::uint32_t us) { return fmt::format("{:.3f}", us / 1000.0); };
    fmt::format_to(it, R"(, "rtt": {})", ms(i.tcpi_rtt));
    std::string opts;
    auto opt = [&](unsigned bit, const char* name) {
      if (i.tcpi_options & bit) opts += fmt::format("{}\"{}\"", opts.empty() ? "" : ", ", name);
    };
    opt(TCPI_OPT_TIMESTAMPS, "ts");
    opt(TCPI_OPT_SACK, "sack");
    opt(TCPI_OPT_ECN, "ecn");
    fmt::format_to(
        it,
        R"(, "tcp_info": {{"state": "{}", "pmtu": {}, "retrans": {}, "ato": {}, "rto": {}, )"
        R"("snd_wscale": {}, "rcv_wscale": {}, "snd_mss": {}, "rcv_mss": {}, "snd_cwnd": {}, )"
        R"("snd_ssthresh": {}, "rtt": {}, "rttvar": {}, "rcv_rtt": {}, "rcv_space": {}, "opts": [{}], )"
        R"("unacked": {}, "lost": {}, "total_retrans": {}, "advmss": {}, "min_rtt": {}, )"
        R"("bytes_acked": {}, "bytes_received": {}, "bytes_sent": {}, "bytes_retrans": {}, )"
        R"("segs_out": {}, "segs_in": {}, "data_segs_out": {}, "data_segs_in": {}, )"
        R"("delivery_rate": {}, "pacing_rate": {}, "delivered": {}, "busy_time": {}, )"
        R"("notsent_bytes": {}, "last_data_sent": {}, "last_data_recv": {}, "last_ack_recv": {}, )"
        R"("snd_wnd": {}}})",
        netlink::tcp_state_name(i.tcpi_state), i.tcpi_pmtu, i.tcpi_retrans, ms(i.tcpi_ato),
        i.tcpi_rto == 3000000 ? "null" : ms(i.tcpi_rto), unsigned{i.tcpi_snd_wscale},
        unsigned{i.tcpi_rcv_wscale}, i.tcpi_snd_mss, i.tcpi_rcv_mss, i.tcpi_snd_cwnd,
        i.tcpi_snd_ssthresh >= 0xFFFF ? "null" : std::to_string(i.tcpi_snd_ssthresh), i.tcpi_rtt,
        ms(i.tcpi_rttvar), ms(i.tcpi_rcv_rtt), i.tcpi_rcv_space, opts, i.tcpi_unacked, i.tcpi_lost,
        i.tcpi_total_retrans, i.tcpi_advmss, i.tcpi_min_rtt, i.tcpi_bytes_acked,
        i.tcpi_bytes_received, i.tcpi_bytes_sent, i.tcpi_bytes_retrans, i.tcpi_segs_out,
        i.tcpi_segs_in, i.tcpi_data_segs_out, i.tcpi_data_segs_in, i.tcpi_delivery_rate,
        i.tcpi_pacing_rate, i.tcpi_delivered, i.tcpi_busy_time, i.tcpi_notsent_bytes,
        i.tcpi_last_data_sent, i.tcpi_last_data_recv, i.tcpi_last_ack_recv, i.tcpi_snd_wnd);
  }
  out.push_back('}');
  return fmt::to_string(out);
}

std::optional<firefly::FireflyUsage> usage_of(const netlink::TcpDetails& d) {
  if (!d.info_len) return std::nullopt;
  return firefly::FireflyUsage{d.info.tcpi_bytes_received, d.info.tcpi_bytes_acked};
}

TcpReport TcpEnrichment::lookup(const FlowID& flow) {
  netlink::SockEntry e;
  netlink::TcpDetails d;
  // The reporting plugin may name either end first. A TIME-WAIT socket has no tcp_info left: then
  // the last values seen are the better answer.
  if ((diag_->lookup(flow.src, flow.src_port, flow.dst, flow.dst_port, e, d) ||
       diag_->lookup(flow.dst, flow.dst_port, flow.src, flow.src_port, e, d)) &&
      d.info_len)
    return {netlink_json(e, d), usage_of(d)};
  return {};
}

TcpReport TcpEnrichment::on_event(const FlowID& flow) {
  if (flow.protocol != Protocol::kTcp || !diag_) return {};
  FlowKey key = FlowKey::of(flow);
  switch (flow.state) {
    case FlowState::kStart: {
      TcpReport now = lookup(flow);
      *flows_.emplace(key, Tracked{}).first = Tracked{flow, now};
      return now;
    }
    case FlowState::kEnd: {
      TcpReport now = lookup(flow);
      if (auto seen = flows_.extract(key); seen && now.netlink.empty()) now = std::move(seen->last);
      return now;
    }
    case FlowState::kOngoing: {
      const Tracked* t = flows_.find(key);
      return t ? t->last : TcpReport{};
    }
  }
  return {};
}

void TcpEnrichment::take_over(TcpEnrichment&& old) {
  old.flows_.for_each([&](const FlowKey& key, Tracked& t) { flows_.emplace(key, std::move(t)); });
  old.flows_.clear();
}

void TcpEnrichment::remember(const FlowID& start) {
  if (start.protocol != Protocol::kTcp) return;
  flows_.emplace(FlowKey::of(start), Tracked{start, {}});
}

void TcpEnrichment::ongoing_events(std::vector<FlowID>& out) {
  if (flows_.empty() || !diag_) return;
  netlink::DumpRequest req;
  req.details = true;
  req.states = ~(1u << netlink::kTcpListen);
  std::string error;
  std::unordered_map<FlowKey, bool, FlowKeyHash> emitted;  // both ends may be local (loopback)
  diag_->dump(
      req,
      [&](const netlink::SockEntry& e, const netlink::TcpDetails* d) {
        if (!d) return;
        Tracked* t = netlink::find_socket_flow(flows_, e);
        if (!t || !emitted.emplace(FlowKey::of(t->start), true).second) return;
        t->last = {netlink_json(e, *d), usage_of(*d)};
        FlowID f = t->start;
        f.state = FlowState::kOngoing;
        out.push_back(f);
      },
      error);
}

}  // namespace flowd::udp_firefly
