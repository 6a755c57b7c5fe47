// SPDX-License-Identifier: Apache-2.0
// IPFIX over a byte stream (TCP, RFC 7011 §10.4): messages are sent back to back, each as long as
// its 16-byte header's Length field says (RFC 7011 §3.1). The netflow plugin's TCP sessions and the
// capture reader (pcap_reader.cpp) cut streams into messages with this one framer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace flowd::collector {

class IpfixStreamFramer {
 public:
  static constexpr std::size_t kHeaderLength = 16;  // RFC 7011 §3.1
  static constexpr std::uint16_t kVersion = 10;
  static constexpr std::size_t kMaxMessage = 65535;  // the Length field is 16 bits

  enum class Status : std::uint8_t {
    kOk,         // every whole message was handed over; a partial one (if any) is kept
    kOutOfSync,  // a header with a version other than 10 or a length < 16: no message boundary can
                 // be found any more; unframed() holds the bytes from that header on
  };

  // Hands each whole message in `bytes` (together with what earlier calls left) to
  // on_message(std::span<const std::uint8_t>), in stream order; the span is valid during the call
  // only. Whole messages inside `bytes` are handed over in place, without a copy; only a trailing
  // partial message is kept, so at most kMaxMessage - 1 bytes stay buffered between calls.
  // Once out of sync, nothing more is handed over until reset().
  template <class F>
  Status feed(std::span<const std::uint8_t> bytes, F&& on_message) {
    if (out_of_sync_) return Status::kOutOfSync;
    if (!pending_.empty()) {
      if (pending_.size() < kHeaderLength) {
        bytes = take(bytes, kHeaderLength - pending_.size());
        if (pending_.size() < kHeaderLength) return Status::kOk;
      }
      const std::size_t length = message_length(pending_.data());
      if (length == 0) return lose_sync(bytes);
      bytes = take(bytes, length - pending_.size());
      if (pending_.size() < length) return Status::kOk;
      on_message(std::span<const std::uint8_t>(pending_));
      pending_.clear();
    }
    while (bytes.size() >= kHeaderLength) {
      const std::size_t length = message_length(bytes.data());
      if (length == 0) return lose_sync(bytes);
      if (bytes.size() < length) break;
      on_message(bytes.first(length));
      bytes = bytes.subspan(length);
    }
    pending_.assign(bytes.begin(), bytes.end());
    return Status::kOk;
  }

  bool out_of_sync() const { return out_of_sync_; }
  // Bytes kept: the start of a message not yet whole, or after kOutOfSync the unframed rest.
  std::size_t buffered() const { return pending_.size(); }
  // After kOutOfSync: the bytes from the bad header to the end of the last feed.
  std::span<const std::uint8_t> unframed() const { return pending_; }
  // Forgets everything buffered; the next byte fed is taken as the start of a message (a capture
  // resynchronises this way at the next segment).
  void reset() {
    pending_.clear();
    out_of_sync_ = false;
  }

  // The Length of the message whose header starts at `p` (kHeaderLength bytes readable), or 0 when
  // the header is not an IPFIX one (version != 10, length < 16).
  static std::size_t message_length(const std::uint8_t* p) {
    const auto version = static_cast<std::uint16_t>(p[0] << 8 | p[1]);
    const auto length = static_cast<std::size_t>(p[2] << 8 | p[3]);
    return version == kVersion && length >= kHeaderLength ? length : 0;
  }

 private:
  // Moves up to `n` bytes from the front of `bytes` to pending_; returns the rest.
  std::span<const std::uint8_t> take(std::span<const std::uint8_t> bytes, std::size_t n) {
    if (n > bytes.size()) n = bytes.size();
    pending_.insert(pending_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    return bytes.subspan(n);
  }
  Status lose_sync(std::span<const std::uint8_t> rest) {
    out_of_sync_ = true;
    pending_.insert(pending_.end(), rest.begin(), rest.end());
    return Status::kOutOfSync;
  }

  std::vector<std::uint8_t> pending_;
  bool out_of_sync_ = false;
};

}  // namespace flowd::collector
